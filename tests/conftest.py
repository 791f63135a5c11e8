"""Shared fixtures live in tests/fixtures/, one module per kind of real server; all are loaded here.

Test tiers: `make test` runs everything; `make test-fast` (`-m "not slow"`) leaves out the slow tier. A test is
slow when it is marked `slow` (a `pytestmark` at the top of its module, or a decorator), or `drill` or `browser`:
the hook below adds `slow` to those, so a new drill or browser test is in the slow tier without further ado.
"""
from pathlib import Path

import pytest

pytest_plugins = sorted(f"tests.fixtures.{path.stem}" for path in (Path(__file__).parent / "fixtures").glob("*.py")
                        if path.stem != "__init__")

SLOW_MARKERS = ("drill", "browser")  # each implies `slow`


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by `-m`
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is None and any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
