"""`python web.py` and `python worker.py` with a bad setting: one line naming the variable, exit 2, no traceback,
no secret (issue 13: each of these once started silently or printed a traceback)."""
import os
import subprocess
import sys

import pytest

from tests.paths import ROOT

SECRET = "tok-" + "9" * 24


def start(entry: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("Lighter_", "LIGHTER_", "REDIS_URL", "API_TOKEN", "WORKER_", "WEB_"))}
    return subprocess.run([sys.executable, entry], cwd=ROOT, env={**base, "DOTENV_FILE": "", **env},
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("entry", ["web.py", "worker.py"])
@pytest.mark.parametrize("env,variable", [
    ({"API_TOKN": SECRET}, "API_TOKN"),
    ({"Lighter_1_main_Acount_Index": "5"}, "Lighter_1_main_Acount_Index"),
    ({"LIGHTER_BASEURL": "http://127.0.0.1:9"}, "LIGHTER_BASEURL"),
    ({"POLL_INTERVAL": "inf"}, "POLL_INTERVAL"),
    ({"RATE_LIMIT": "0/minute"}, "RATE_LIMIT"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
    ({"REDIS_URL": f"redis://:{SECRET}@localhost:port/0"}, "REDIS_URL"),
    ({"PORT": "70000"}, "PORT"),
    ({"WEB_CONCURRENCY": "abc"}, "WEB_CONCURRENCY"),
    ({"CACHE_DIR": "/proc/lb-cannot-create-this"}, "CACHE_DIR"),
])
def test_bad_setting_is_one_line_naming_it(entry, env, variable):
    done = start(entry, {**env, "API_TOKEN": SECRET} if "API_TOKN" not in env else env)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and variable in lines[0] and "configuration error" in lines[0], output
    assert "Traceback" not in output and SECRET not in output
