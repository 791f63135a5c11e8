"""The repository stands alone: docs/lighter-protocol.md carries the facts about Lighter that the code cites, and
nothing points at files outside the repository."""
from __future__ import annotations

import re

from tests.paths import DOCS, ROOT

PROTOCOL = DOCS / "lighter-protocol.md"
# Text files a clone has; the virtualenv, caches and git's own files are not part of it.
SCANNED = {".py", ".md", ".yaml", ".yml", ".toml", ".ini", ".txt", ".cfg", ".json", ".sh", ""}
SKIPPED_DIRS = {".git", ".venv", ".cache", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"}
# app/ still cites the old shelf in two comments; its owners move them to docs/lighter-protocol.md.
PENDING: set[str] = set()
OUTSIDE = "../" + "shared"  # spelled in two parts so this file does not match itself


def headings() -> list[str]:
    return re.findall(r"^#+ (.+)$", PROTOCOL.read_text(), re.M)


def test_the_sections_code_cites_exist():
    titles = [re.sub(r"^\d+\.\s*", "", t).lower() for t in headings()]
    assert "error codes" in titles and "rate limits" in titles
    # Code cites sections as "§N": 1 to 9 exist, in order.
    numbers = [int(m.group(1)) for t in headings() if (m := re.match(r"^(\d+)\. ", t))]
    assert numbers == list(range(1, 10))


def test_every_error_code_we_emit_is_documented():
    text = PROTOCOL.read_text()
    emitted = set()
    for source in [ROOT / "simulator" / "errors.py", *sorted((ROOT / "app" / "compat").glob("*.py"))]:
        emitted |= set(re.findall(r"\b(2\d{4}|30\d{3})\b", source.read_text()))
    assert emitted, "no Lighter error codes found in the code: the pattern is out of date"
    missing = sorted(code for code in emitted if code not in text)
    assert not missing, f"error codes used in code but not in docs/lighter-protocol.md: {missing}"


def test_every_source_is_public():
    text = PROTOCOL.read_text()
    assert "shared/" not in text and "../" not in text
    sources = text[text.index("## 9. Sources"):]
    for tag in ["D1", "D2", "D3", "D5", "D9", "D11", "M1", "M2", "T1", "T2", "T3"]:
        line = next((ln for ln in sources.splitlines() if ln.startswith(f"- {tag}:")), None)
        assert line is not None and "https://" in line, f"source {tag} has no public URL"


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in ROOT.rglob("*"):
        relative = path.relative_to(ROOT)
        if (not path.is_file() or path.suffix not in SCANNED or set(relative.parts) & SKIPPED_DIRS
                or relative.parts[0] in PENDING):
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if OUTSIDE in line:
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "references to a directory outside the repository:\n" + "\n".join(offenders)
