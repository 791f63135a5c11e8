"""The example at the top of docs/lighter-compat.md, run as pasted: a script against the live stack (simulator,
worker, web with API_TOKEN), with lighter-sdk unchanged. A wrong token ends it with the documented close 1008."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.app.compat.conftest import TOKEN, Stack
from tests.paths import DOCS, ROOT


def example(tmp_path: Path) -> Path:
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "lighter-compat.md").read_text(), re.S)
    assert blocks, "docs/lighter-compat.md has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    return script


def run(script: Path, stack: Stack, token: str, index: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "BROADCASTER_URL": stack.web.url, "API_TOKEN": token, "ACCOUNT_INDEX": str(index),
           "PYTHONPATH": ""}
    # From the temporary directory: the script needs nothing of this repository, only lighter-sdk.
    return subprocess.run([sys.executable, str(script)], cwd=script.parent, env=env, capture_output=True, text=True,
                          timeout=60)


def test_the_documented_example_runs_as_a_script(stack: Stack, tmp_path: Path) -> None:
    index = stack.accounts[0]["account_index"]
    result = run(example(tmp_path), stack, TOKEN, index)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Lighter's decimal string, as our own API has it (the market moves, so the shape, not the value).
    assert re.fullmatch(r"collateral -?\d+\.\d+", lines[0]), lines
    assert isinstance(stack.ours(index)["sections"]["summary"]["data"]["collateral"], str)
    assert re.fullmatch(r"active orders \d+", lines[1]), lines
    assert re.fullmatch(rf"stream subscribed/account_all account {index} positions \d+", lines[2]), lines
    assert len(lines) == 3 and not result.stderr.strip(), result.stderr
    assert str(ROOT) not in result.stdout


def test_a_wrong_token_ends_the_stream_with_1008(stack: Stack, tmp_path: Path) -> None:
    script = example(tmp_path)
    # Past the REST part with the right token: only the stream's token is wrong.
    script.write_text(script.read_text().replace('f"/stream?auth={TOKEN}"', 'f"/stream?auth={TOKEN}-wrong"'))
    result = run(script, stack, TOKEN, stack.accounts[0]["account_index"])
    assert result.returncode == 1 and "stream closed: 1008" in result.stderr, result.stdout + result.stderr
