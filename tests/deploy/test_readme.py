"""The README's promises: exactly two set-up commands, CI runs the test one, and every local link resolves."""
from __future__ import annotations

import re

import pytest

from tests.paths import ROOT

DOCS = ["README.md", "docs/architecture.md", "docs/deploy.md", "docs/lighter-protocol.md", "docs/simulator.md"]


def section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_set_up_is_exactly_make_run_and_make_test():
    setup = section((ROOT / "README.md").read_text(), "Set up")
    blocks = [b.strip() for b in re.findall(r"```sh\n(.*?)```", setup, re.S)]
    assert blocks == ["make run", "make test"]


def test_ci_runs_the_linters_then_exactly_the_readme_test_command():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [line for line in lines if line and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert commands == ["make lint", "make test"]


def test_makefile_has_both_targets_and_stamps_follow_requirements():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: \$\(VENV\)/\.installed-run$", makefile, re.M)
    assert re.search(r"^test: \$\(VENV\)/\.installed system-deps$", makefile, re.M)
    assert re.search(r"^\$\(VENV\)/\.installed: requirements\.txt requirements-dev\.txt", makefile, re.M)
    assert re.search(r"^\$\(VENV\)/\.installed-run: requirements\.txt", makefile, re.M)


@pytest.mark.parametrize("doc", DOCS)
def test_local_links_resolve(doc: str):
    path = ROOT / doc
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        assert (path.parent / target).exists(), f"{doc} links to {target}, which does not exist"
