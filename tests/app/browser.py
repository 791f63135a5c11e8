"""What the dashboard tests (tests/app/test_dashboard*.py) share: headless Chromium (Debian's package, driven by
Playwright; the `browser` fixture in tests/app/conftest.py), the two viewports, the test accounts' names, and the
phone layout's rule for wide tables."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator[Any]:
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (`make system-deps`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def named(env: dict[str, str]) -> dict[str, str]:
    """The test accounts renamed `main` then `hedge` (alphabetically the other way round: the page must keep
    the configuration's order)."""
    renamed = {}
    for key, value in env.items():
        key = key.replace("Lighter_1_1_", "Lighter_1_main_").replace("Lighter_1_2_", "Lighter_1_hedge_")
        renamed[key] = value
    return renamed


def unhinted_wide_tables(page: Any) -> int:
    """How many scrolling boxes are wider than the screen with no visible hint after them (should be none)."""
    count: int = page.evaluate("""[...document.querySelectorAll('.scroll')]
        .filter(b => b.scrollWidth > b.clientWidth + 1)
        .filter(b => { const h = b.nextElementSibling; return !h || getComputedStyle(h).display === 'none'; })
        .length""")
    return count
