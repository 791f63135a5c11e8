"""The dashboard in headless Chromium (Debian's package, driven by Playwright) against the whole live stack."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
from pathlib import Path

import jsonpatch
import pytest
import requests

from app.ws import patches
from tests.app.helpers import without_freshness
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.jsondocs import mutate, random_value

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"


@pytest.fixture
def browser():
    if not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (`make system-deps`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def test_dashboard_live_then_stale(browser, tmp_path):
    store_env = {"CACHE_DIR": str(tmp_path / "store")}
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(run_simulator(tick_ms=200))
        env = worker_env_for(sim, store_env, accounts=2, public_only=(1,), UPSTREAM_TIER="unlimited",
                             POLL_INTERVAL="0.3")
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        worker.wait_for(lambda: len(store.accounts()) == 2, timeout=20, message="both accounts stored")
        web = stack.enter_context(run_web({**store_env, "CACHE_TTL": "3"}))
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        patch_frames: list[str] = []
        page.on("websocket", lambda ws: ws.on(
            "framereceived", lambda payload: '"patch":' in str(payload) and patch_frames.append(str(payload))))
        page.goto(web.url + "/")
        first, second = store.tracked()
        card = page.locator(f'[data-account="{first}"]')
        card.wait_for(timeout=15_000)
        page.locator(f'[data-account="{second}"]').wait_for(timeout=15_000)
        assert page.locator("#conn").inner_text() == "live"
        page.locator('#egresses tr[data-egress="direct"]').wait_for(timeout=10_000)

        # Move a position in the simulator: the page follows without a reload.
        size = card.locator('.position[data-market="0"] .size')
        before = size.inner_text() if size.count() else None
        sim.control.trade(first, 0, "0.5", is_ask=False)
        page.wait_for_function(
            "([sel, before]) => { const e = document.querySelector(sel); return e && e.textContent !== before; }",
            arg=[f'[data-account="{first}"] .position[data-market="0"] .size', before], timeout=15_000)
        # It asked for patch updates, and what it rebuilt from them is what REST serves at that seq.
        assert patch_frames
        def same_as_rest() -> bool:
            held = page.evaluate(f"state.accounts.get({first})")
            body = requests.get(f"{web.url}/api/accounts/{first}", timeout=5).json()
            return held["seq"] == body["seq"] and without_freshness(held) == without_freshness(body)
        worker.wait_for(same_as_rest, timeout=10, message="the page's account equal to REST's at the same seq")
        if store.status()["upstream"]["simulator"]:
            page.locator("#banner-sim").wait_for(state="visible", timeout=5_000)
        card.locator(".badge.ok", has_text="fresh").wait_for(timeout=5_000)
        # docs/dashboard.png is refreshed on request only, so test runs do not dirty the tree.
        refresh = os.environ.get("UPDATE_SCREENSHOTS") == "1" or not SCREENSHOT.exists()
        page.screenshot(path=str(SCREENSHOT if refresh else tmp_path / "dashboard.png"), full_page=True)

        # Stop the worker: the data ages past CACHE_TTL and the page says so.
        worker.stop()
        card.locator(".badge.stale").first.wait_for(timeout=15_000)
        page.locator("#banner-worker").wait_for(state="visible", timeout=10_000)

        # The page's patch code agrees with a standard RFC 6902 library on every kind of patch we make.
        rng = random.Random(3)
        for _ in range(200):
            old = {"doc": random_value(rng)}
            new = {"doc": mutate(rng, old["doc"])}
            ops = patches.diff(old, new)
            assert page.evaluate("([doc, ops]) => applyPatch(doc, ops)", [old, ops]) == \
                jsonpatch.apply_patch(old, ops) == new

        # Readable on a phone: no horizontal scrolling of the page itself.
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert errors == []
