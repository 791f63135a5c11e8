"""The trader's dashboard in headless Chromium (Debian's package, driven by Playwright) against the whole live
stack (simulator → worker → store → web), at 1440×900 and 390×844: names, totals, fills, patches, a phone, a
stopped worker; exact decimal formatting. History: test_dashboard_history.py; alerts: test_dashboard_alerts.py."""
from __future__ import annotations

import contextlib
import os
import random
from decimal import Decimal
from pathlib import Path

import jsonpatch
import pytest
import requests

from app.ws import patches
from tests.app.browser import DESKTOP, PHONE, named, unhinted_wide_tables
from tests.app.helpers import apply_confirm, without_freshness
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.jsondocs import mutate, random_value

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parents[2] / "docs"
MONEY = ("equity", "unrealized_pnl", "realized_pnl", "available_balance", "volume_24h")
TOTAL_IDS = {"equity": "t-equity", "unrealized_pnl": "t-upnl", "realized_pnl": "t-rpnl",
             "available_balance": "t-available", "volume_24h": "t-volume"}


def screenshot(page, name: str, tmp_path: Path) -> None:
    """docs/<name> is refreshed on request (UPDATE_SCREENSHOTS=1) or when missing, so runs keep the tree clean."""
    target = DOCS / name
    refresh = os.environ.get("UPDATE_SCREENSHOTS") == "1" or not target.exists()
    page.screenshot(path=str(target if refresh else tmp_path / name), full_page=True, animations="disabled")


def show_history(page) -> None:
    """For the screenshots: the last hour's chart and the fills the history holds by now."""
    page.click("#eq-range button[data-range='1h']")
    page.locator("#eq-chart canvas").wait_for(timeout=15_000)
    page.click("#hfills-reload")
    page.wait_for_function("() => document.querySelectorAll('#hfills tr.hfill').length > 0", timeout=15_000)


def shown(page) -> dict:
    """What the page shows: the totals' and each card's exact values (data-value), and the portfolio's seqs."""
    return page.evaluate("""(ids) => {
        const value = (sel) => { const e = document.querySelector(sel); return e ? e.dataset.value : null; };
        const cards = [...document.querySelectorAll('#accounts [data-account]')].map((c) => ({
            index: Number(c.dataset.account), name: c.querySelector('.name').textContent,
            equity: value(`[data-key="${c.dataset.account}:equity"]`),
            unrealized_pnl: value(`[data-key="${c.dataset.account}:upnl"]`),
            realized_pnl: value(`[data-key="${c.dataset.account}:rpnl"]`),
            available_balance: value(`[data-key="${c.dataset.account}:available"]`),
            volume_24h: value(`[data-key="${c.dataset.account}:volume"]`)}));
        const totals = Object.fromEntries(Object.entries(ids).map(([k, id]) => [k, value('#' + id)]));
        const seqs = state.portfolio ? state.portfolio.accounts.map((a) => a.seq) : null;
        return {cards, totals, seqs};
    }""", TOTAL_IDS)


def totals_match_api(page, url: str) -> dict | None:
    """The page's totals equal the sum of the accounts' API values, when the page and the API show the same
    seqs (the simulator moves marks every tick, so the two are compared at one moment of the book)."""
    view = shown(page)
    api = requests.get(url + "/api/portfolio", timeout=5).json()
    if view["seqs"] != [a["seq"] for a in api["accounts"]]:
        return None
    for key in MONEY:
        values = [a[key] for a in api["accounts"]]
        if any(v is None for v in values):
            assert view["totals"][key] == "" and api["total"][key] is None  # unknown stays unknown: "—"
            continue
        assert Decimal(view["totals"][key]) == sum(Decimal(v) for v in values) == Decimal(api["total"][key]), key
        assert [Decimal(c[key]) for c in view["cards"]] == [Decimal(v) for v in values], key
    return view


def test_dashboard_for_the_trader(browser, tmp_path):
    # Worker and web share the history database, so the screenshots show the chart.
    store_env = {"CACHE_DIR": str(tmp_path / "store"), "DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}"}
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(run_simulator(tick_ms=1000))
        env = named(worker_env_for(sim, store_env, accounts=2, public_only=(1,), UPSTREAM_TIER="unlimited",
                                   POLL_INTERVAL="0.3"))
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        worker.wait_for(lambda: len(store.accounts()) == 2, timeout=20, message="both accounts stored")
        indexes = {k: v for k, v in env.items() if k.endswith("_Account_Index")}  # history serves these
        web = stack.enter_context(run_web({**store_env, **indexes, "CACHE_TTL": "3"}))
        main, hedge = store.tracked()
        page = browser.new_page(viewport=DESKTOP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        patch_frames: list[str] = []
        page.on("websocket", lambda ws: ws.on(
            "framereceived", lambda payload: '"patch":' in str(payload) and patch_frames.append(str(payload))))
        page.goto(web.url + "/")
        card = page.locator(f'[data-account="{main}"]')
        card.locator('.position[data-market="0"], .numbers').first.wait_for(timeout=15_000)
        page.locator(f'[data-account="{hedge}"]').wait_for(timeout=15_000)
        assert page.locator("#conn").inner_text() == "live"

        # Names, in configuration order (main was configured first), everywhere an account is listed.
        worker.wait_for(lambda: shown(page)["cards"] and [c["name"] for c in shown(page)["cards"]] == ["main", "hedge"]
                        and shown(page)["totals"]["equity"], timeout=15, message="named cards and totals")
        assert [c["index"] for c in shown(page)["cards"]] == [main, hedge]
        status = requests.get(f"{web.url}/api/status", timeout=5).json()
        assert status["accounts"][str(main)]["name"] == "main" and status["accounts"][str(hedge)]["group"] == 1
        assert requests.get(f"{web.url}/api/accounts/{main}", timeout=5).json()["name"] == "main"

        # Totals are the exact sum of the accounts' API values.
        worker.wait_for(lambda: totals_match_api(page, web.url), timeout=20, message="page totals = API sums")
        page.locator("#statusline.ok").wait_for(timeout=10_000)
        assert page.locator("#t-equity").inner_text() != "0.00"

        # A simulator trade appears in recent fills, and the book moves with it.
        before_fills = set(page.evaluate("[...document.querySelectorAll('#fills tr.fill')].map(r => r.dataset.trade)"))
        size_key = f'[data-key="{main}:0:size"]'
        before_size = page.evaluate(f"document.querySelector('{size_key}')?.dataset.value ?? null")
        before_margin = page.evaluate("state.portfolio.total.margin_used")
        filled = sim.control.trade(main, 0, "0.5", is_ask=False)
        assert filled
        page.wait_for_function(
            "([main, before]) => [...document.querySelectorAll(`#fills tr.fill[data-fill-account='${main}']`)]"
            ".some((r) => !before.includes(r.dataset.trade))", arg=[main, sorted(before_fills)], timeout=15_000)
        page.wait_for_function("([sel, before]) => { const e = document.querySelector(sel); "
                               "return e && e.dataset.value !== before; }", arg=[size_key, before_size],
                               timeout=15_000)
        assert page.evaluate("state.portfolio.total.margin_used") != before_margin
        worker.wait_for(lambda: totals_match_api(page, web.url), timeout=20, message="totals after the trade")
        # The worker took the volumes from account_all_trades: the trade counts in the 24 h volume.
        main_figures = requests.get(f"{web.url}/api/portfolio", timeout=5).json()["accounts"][0]
        assert Decimal(main_figures["volume_24h"]) >= 1000  # 0.5 ETH at the simulator's ~3,150
        # The page rebuilt from patches what REST serves at that seq.
        assert patch_frames

        def same_as_rest() -> bool:
            held = page.evaluate(f"state.accounts.get({main})")
            body = requests.get(f"{web.url}/api/accounts/{main}", timeout=5).json()
            return held["seq"] == body["seq"] and without_freshness(held) == without_freshness(body)
        worker.wait_for(same_as_rest, timeout=10, message="the page's account equal to REST's at the same seq")
        if store.status()["upstream"]["simulator"]:
            page.locator("#banner-sim").wait_for(state="visible", timeout=5_000)
        # Unknown is "—", never 0: the public-only account has no orders to show, and no "-0" anywhere.
        text = page.locator("main").inner_text()
        assert "-0.00" not in text and "NaN" not in text and "undefined" not in text
        numbers = page.evaluate("[...document.querySelectorAll('td.num')].map(e => getComputedStyle(e).textAlign)")
        assert numbers and set(numbers) == {"right"}
        show_history(page)
        screenshot(page, "dashboard-desktop.png", tmp_path)

        # On a phone: money first, operator detail folded below it, nothing wider than the screen unannounced.
        page.set_viewport_size(PHONE)
        page.reload()
        page.locator(f'[data-account="{main}"] .name').wait_for(timeout=15_000)
        worker.wait_for(lambda: totals_match_api(page, web.url), timeout=20, message="phone totals = API sums")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        tops = page.evaluate("['#portfolio', '#accounts', '#operator'].map(s => document.querySelector(s)"
                             ".getBoundingClientRect().top)")
        assert tops == sorted(tops) and tops[0] < PHONE["height"] / 3
        assert page.evaluate("document.querySelector('#operator').open") is False
        assert unhinted_wide_tables(page) == 0, "a table wider than the screen without its hint"
        show_history(page)
        screenshot(page, "dashboard-phone.png", tmp_path)

        # Stop the worker: every figure turns stale and the status line red; nothing upstream shows green.
        page.set_viewport_size(DESKTOP)
        worker.stop()
        page.locator("#statusline.bad").wait_for(timeout=15_000)
        page.locator("#banner-worker").wait_for(state="visible", timeout=10_000)
        page.wait_for_function("[...document.querySelectorAll('.fig')].every(e => e.classList.contains('stale')"
                               " || e.closest('.is-stale'))", timeout=15_000)
        assert page.locator("#mode .badge.ok").count() == 0 and page.locator("#egresses .badge.ok").count() == 0
        assert page.locator("#accounts .badge.ok").count() == 0
        assert "down" in page.locator("#status-text").inner_text().lower()

        # The page's patch code agrees with a standard RFC 6902 library on every kind of patch we make.
        rng = random.Random(3)
        for _ in range(200):
            old = {"doc": random_value(rng)}
            new = {"doc": mutate(rng, old["doc"])}
            ops = patches.diff(old, new)
            assert page.evaluate("([doc, ops]) => applyPatch(doc, ops)", [old, ops]) == \
                jsonpatch.apply_patch(old, ops) == new
        # And its confirm code applies a `confirm` frame as the documented rule does (tests/app/helpers.py).
        held = page.evaluate(f"state.accounts.get({main})")
        frame = {"type": "confirm", "account_index": main, "seq": held["seq"] + 3, "prev_seq": held["seq"],
                 "version": held.get("version"), "written_at": 2_000_000_000_001, "as_of": 2_000_000_000_000,
                 "age_ms": 40, "stale": False,
                 "sections": {"summary": [2_000_000_000_000, "ws", False],
                              "positions": [1_999_999_999_000, "rest", True]}}
        assert page.evaluate("([held, msg]) => applyConfirm(held, msg)", [held, frame]) == apply_confirm(held, frame)
        assert errors == []


def test_decimal_formatting_is_exact(browser, tmp_path):
    """The page formats the server's decimal strings without float: rounding, separators, no "-0", unknown "—"."""
    env = {"CACHE_DIR": str(tmp_path / "store")}
    with run_web(env) as web:
        page = browser.new_page(viewport=DESKTOP)
        page.goto(web.url + "/")
        cases = [("1234567.891", 2, "1,234,567.89"), ("-0.004", 2, "0.00"), ("0.005", 2, "0.01"),
                 ("9007199254740993.5", 0, "9,007,199,254,740,994"), ("2350.1", 2, "2,350.10"), (None, 2, "—"),
                 ("nope", 2, "—"), ("-12.5", None, "-12.5"), ("0.30000000000000004", 2, "0.30")]
        for value, places, expected in cases:
            assert page.evaluate("([v, p]) => fmtDec(v, p === null ? undefined : p)", [value, places]) == expected
        # With no data at all, every figure is "—" and the status line is not green.
        page.locator("#statusline").wait_for()
        assert set(page.evaluate("[...document.querySelectorAll('.kpi .fig')].map(e => e.textContent)")) == {"—"}
        assert "ok" not in page.locator("#statusline").get_attribute("class")
