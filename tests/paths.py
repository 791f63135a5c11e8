"""Where things are in the repository, for every suite (instead of `Path(__file__).resolve().parents[n]`)."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent   # the repository root: cwd for every process the tests start
TESTS = ROOT / "tests"
DOCS = ROOT / "docs"
README = ROOT / "README.md"
DASHBOARD_STATIC = ROOT / "app" / "dashboard" / "static"
