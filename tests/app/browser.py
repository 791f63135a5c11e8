"""What the dashboard tests (tests/app/test_dashboard*.py) share: headless Chromium (Debian's package, driven by
Playwright; the `browser` fixture in tests/app/conftest.py), the two viewports, and the test accounts' names."""
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

