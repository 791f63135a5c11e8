"""The trader's dashboard in headless Chromium (Debian's package, driven by Playwright) against the whole live
stack (simulator → worker → store → web), at 1440×900 and 390×844."""
from __future__ import annotations

import contextlib
import os
import random
import shutil
from decimal import Decimal
from pathlib import Path

import jsonpatch
import pytest
import requests

from app.ws import patches
from tests.app.helpers import apply_confirm, without_freshness
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.jsondocs import mutate, random_value
from tests.waiting import wait_for

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[2] / "docs"
DESKTOP, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}
MONEY = ("equity", "unrealized_pnl", "realized_pnl", "available_balance", "volume_24h")
TOTAL_IDS = {"equity": "t-equity", "unrealized_pnl": "t-upnl", "realized_pnl": "t-rpnl",
             "available_balance": "t-available", "volume_24h": "t-volume"}


@pytest.fixture
def browser():
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
        hidden = page.evaluate("""[...document.querySelectorAll('.scroll')]
            .filter(b => b.scrollWidth > b.clientWidth + 1)
            .filter(b => { const h = b.nextElementSibling; return !h || getComputedStyle(h).display === 'none'; })
            .length""")
        assert hidden == 0, "a table wider than the screen without its hint"
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


def api_fills(url: str, accounts: list[int]) -> list[dict]:
    """Every stored fill of `accounts`, newest first (ts, then trade id), following the API's cursors."""
    rows = []
    for index in accounts:
        cursor = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            response = requests.get(f"{url}/api/accounts/{index}/fills", params=params, timeout=5)
            response.raise_for_status()  # 503 until the worker has migrated the database
            body = response.json()
            rows += [{**f, "account_index": index} for f in body["fills"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
    return sorted(rows, key=lambda f: (f["ts"], f["trade_id"]), reverse=True)


def table_fills(page) -> list[dict]:
    return page.evaluate("""[...document.querySelectorAll('#hfills tr.hfill')].map((r) => {
        const td = r.querySelectorAll('td');
        return {trade_id: Number(r.dataset.trade), account_index: Number(r.dataset.fillAccount),
                name: td[1].textContent, side: td[3].textContent, size: td[4].dataset.value,
                price: td[5].dataset.value, fee: td[6].dataset.value, role: td[7].textContent};
    })""")


def chart_matches_api(page, url: str) -> bool:
    """The drawn series has one point per bucket the API returns for the page's own range (re-read first)."""
    page.evaluate("refreshEquity()")
    view = page.evaluate("""({account: hist.account, from: hist.from, to: hist.to, bucket_s: hist.bucketMs / 1000,
        drawn: hist.plot ? hist.plot.data.map((s) => s.length) : null,
        canvas: document.querySelectorAll('#eq-chart canvas').length})""")
    path = "/api/portfolio/equity" if view["account"] == "total" else f"/api/accounts/{view['account']}/equity"
    body = requests.get(url + path, params={k: view[k] for k in ("from", "to", "bucket_s")}, timeout=5).json()
    count = len(body["points"])
    return count > 0 and view["canvas"] >= 1 and view["drawn"] == [count] * 4


@pytest.mark.slow
def test_history_chart_and_fills(browser, tmp_path):
    """After simulator trades: the fills table equals the history API, page by page; the chart draws one point per
    bucket; a range or account switch asks the server again; on a phone the chart fits the width."""
    store_env = {"CACHE_DIR": str(tmp_path / "store"), "DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}"}
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(run_simulator(tick_ms=1000))
        env = named(worker_env_for(sim, store_env, accounts=2, public_only=(1,), UPSTREAM_TIER="unlimited",
                                   POLL_INTERVAL="0.3", HISTORY_SAMPLE_S="1"))
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        worker.wait_for(lambda: len(store.accounts()) == 2, timeout=20, message="both accounts stored")
        # The web serves history only for the accounts it is configured with (their indexes; no keys needed).
        indexes = {k: v for k, v in env.items() if k.endswith("_Account_Index")}
        web = stack.enter_context(run_web({**store_env, **indexes, "RATE_LIMIT": "10000/minute"}))
        main, hedge = store.tracked()
        for size, is_ask in (("0.5", False), ("0.2", True), ("0.3", False)):
            assert sim.control.trade(main, 0, size, is_ask=is_ask)
        wait_for(lambda: len(api_fills(web.url, [main])) >= 3, timeout=30, message="3 fills in the history API",
                 interval=0.3, ignore=(requests.HTTPError,))
        page = browser.new_page(viewport=DESKTOP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # The page's Content-Security-Policy still lets uPlot run and style itself: no violation reported.
        page.on("console", lambda m: m.type == "error" and "Content Security Policy" in m.text
                and errors.append(m.text))
        equity_requests: list[str] = []
        page.on("request", lambda r: "/equity?" in r.url and equity_requests.append(r.url))
        page.goto(web.url + "/")
        page.locator(f"#eq-account option[value='{main}']").wait_for(state="attached", timeout=15_000)

        # The first page follows new fills by itself (re-read every 10 s).
        page.wait_for_function("() => document.querySelectorAll('#hfills tr.hfill').length >= 3", timeout=15_000)
        known = {f["trade_id"] for f in api_fills(web.url, [main, hedge])}
        assert sim.control.trade(main, 0, "0.1", is_ask=True)
        fresh = wait_for(lambda: [f for f in api_fills(web.url, [main]) if f["trade_id"] not in known], timeout=15,
                         message="the new fill in the API")
        page.wait_for_function("(id) => document.querySelector(`#hfills tr.hfill[data-trade='${id}']`)",
                               arg=str(fresh[0]["trade_id"]), timeout=25_000)

        # Fills: the table is the API's fills of every account, newest first, exact decimals, 2 per page.
        page.evaluate("hist.pageSize = 2")
        page.click("#hfills-reload")
        page.wait_for_function("() => document.querySelectorAll('#hfills tr.hfill').length === 2", timeout=10_000)
        expected = api_fills(web.url, [main, hedge])
        assert len(expected) >= 3
        page.click("#hfills-more")
        page.wait_for_function("() => document.querySelectorAll('#hfills tr.hfill').length === 4 || "
                               "document.querySelector('#hfills-more').hidden", timeout=10_000)
        while not page.locator("#hfills-more").is_hidden():
            count = len(table_fills(page))
            page.click("#hfills-more")
            page.wait_for_function(f"() => document.querySelectorAll('#hfills tr.hfill').length > {count} || "
                                   "document.querySelector('#hfills-more').hidden", timeout=10_000)
        shown_fills = table_fills(page)
        assert len(shown_fills) >= 3
        # The living market may fill resting orders after the table's first page was read: those newer fills head
        # the API's answer now, so the comparison starts at the table's first (newest) fill.
        expected = api_fills(web.url, [main, hedge])
        ids = [(f["trade_id"], f["account_index"]) for f in expected]
        start = ids.index((shown_fills[0]["trade_id"], shown_fills[0]["account_index"]))
        expected = expected[start:start + len(shown_fills)]
        assert [(f["trade_id"], f["account_index"]) for f in shown_fills] == \
            [(f["trade_id"], f["account_index"]) for f in expected]
        for row, fill in zip(shown_fills, expected, strict=True):
            assert (row["size"], row["price"], row["fee"] or None) == (fill["size"], fill["price"], fill["fee"])
            assert row["side"] == fill["side"] and row["role"] == (fill["role"] or "—")
            assert row["name"] == ("main" if fill["account_index"] == main else "hedge")
        assert {f["side"] for f in shown_fills if f["account_index"] == main} >= {"buy", "sell"}

        # Chart: the total over 24 h, one drawn point per API bucket; another range asks the server again.
        assert page.evaluate("hist.range") == "24h"
        worker.wait_for(lambda: chart_matches_api(page, web.url), timeout=20, message="24 h chart = API buckets")
        assert any("/api/portfolio/equity?" in u and "bucket_s=173" in u for u in equity_requests)
        before = len(equity_requests)
        page.click("#eq-range button[data-range='1h']")
        page.wait_for_function("() => hist.range === '1h' && hist.bucketMs === 8000", timeout=5_000)
        assert any("bucket_s=8" in u for u in equity_requests[before:])
        worker.wait_for(lambda: chart_matches_api(page, web.url), timeout=20, message="1 h chart = API buckets")
        page.select_option("#eq-account", str(main))
        worker.wait_for(lambda: any(f"/api/accounts/{main}/equity?" in u for u in equity_requests), timeout=10,
                        message="the account's equity asked for")
        worker.wait_for(lambda: chart_matches_api(page, web.url), timeout=20, message="account chart = API buckets")
        # The periodic refresh asks only for the newest bucket onwards, not the whole range.
        page.evaluate("refreshEquity()")
        frm = int(equity_requests[-1].split("from=")[1].split("&")[0])
        assert frm >= page.evaluate("hist.points[hist.points.length - 1].ts")

        # Phone: the chart fits the width, tables scroll with their hint.
        page.set_viewport_size(PHONE)
        page.wait_for_function("() => document.querySelector('#eq-chart canvas').getBoundingClientRect().right"
                               " <= window.innerWidth", timeout=5_000)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        hidden = page.evaluate("""[...document.querySelectorAll('.scroll')]
            .filter(b => b.scrollWidth > b.clientWidth + 1)
            .filter(b => { const h = b.nextElementSibling; return !h || getComputedStyle(h).display === 'none'; })
            .length""")
        assert hidden == 0, "a table wider than the screen without its hint"
        assert errors == []


def test_history_unavailable_shows_a_message(browser, tmp_path):
    """History disabled: the API answers 503 and the page says so instead of drawing an empty chart."""
    env = {"CACHE_DIR": str(tmp_path / "store"), "HISTORY_ENABLED": "0"}
    with run_web(env) as web:
        assert requests.get(f"{web.url}/api/portfolio/equity", timeout=5).status_code == 503
        page = browser.new_page(viewport=DESKTOP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(web.url + "/")
        page.locator("#eq-message").wait_for(state="visible", timeout=10_000)
        assert "History is unavailable: history is disabled" in page.locator("#eq-message").inner_text()
        page.click("#eq-range button[data-range='7d']")
        page.wait_for_function("() => hist.range === '7d'")
        page.locator("#eq-message").wait_for(state="visible", timeout=10_000)
        assert page.locator("#eq-chart canvas").count() == 0 and page.locator("#eq-chart").is_hidden()
        assert errors == []


def alerts_panel(page) -> dict:
    """What the alerts panel shows: each rule's row and each delivery row (the times as exact ms and as text)."""
    return page.evaluate("""() => ({
        rules: [...document.querySelectorAll('#alert-rules tbody tr')].map((tr) => ({
            name: tr.dataset.rule, when: tr.children[1].textContent, state: tr.children[2].textContent,
            fired: tr.querySelector('.fired').dataset.value, fired_text: tr.querySelector('.fired').textContent,
            to: tr.children[4].textContent})),
        deliveries: [...document.querySelectorAll('#alerts tbody tr')].map((tr) => ({
            id: Number(tr.dataset.delivery), event_id: tr.dataset.event, fired: tr.children[0].dataset.value,
            rule: tr.children[1].textContent, account: tr.children[2].textContent,
            destination: tr.children[3].textContent, status: tr.children[4].textContent,
            attempts: tr.children[5].textContent, code: tr.children[6].textContent})),
    })""")


def test_alerts_panel(browser, tmp_path):
    """After a fill with rules configured: the panel shows each rule, its state and last fired, and the delivery
    log, exactly as /api/alerts says; no destination URL, token or signing secret anywhere in the page."""
    from tests.alerts.receiver import SECRET, receiving

    store_env = {"CACHE_DIR": str(tmp_path / "store"), "DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}"}
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(receiving())
        rules = f"""
[destinations.ops]
webhook = "{receiver.url('/hook?token=HOOKSECRET')}"
secret = "{SECRET}"
[destinations.chat]
apprise = "json://127.0.0.1:{receiver.port}/chat?token=CHATSECRET"

[[rules]]
name = "fills"
when = "fill"
to = ["ops"]

[[rules]]
name = "margin"
when = "margin_usage_above"
percent = 99
"""
        sim = stack.enter_context(run_simulator(tick_ms=1000))
        sim.control.pause()  # no living market: the fills are this test's own
        env = worker_env_for(sim, store_env, accounts=1, UPSTREAM_TIER="unlimited", ALERTS=rules,
                             ALERTS_GROUP_S="0")
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        [account] = [int(v) for k, v in env.items() if k.endswith("_Account_Index")]
        worker.wait_for(lambda: (store.account(account) or {}).get("sections", {}).get("trades", {})
                        .get("data") is not None, timeout=20, message="the trades section known")
        web = stack.enter_context(run_web({**store_env, "Lighter_1_1_Account_Index": str(account),
                                           "ALERTS": rules, "RATE_LIMIT": "10000/minute"}))

        def api() -> dict:
            return requests.get(f"{web.url}/api/alerts", timeout=5).json()

        assert sim.control.trade(account, 0, "0.01", is_ask=False)
        wait_for(lambda: [d["status"] for d in api()["deliveries"]] == ["delivered"], timeout=30,
                 message="the fill alert delivered", ignore=(requests.RequestException,))
        page = browser.new_page(viewport=DESKTOP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(web.url + "/")
        page.locator("#alerts tbody tr").first.wait_for(timeout=15_000)
        expected = api()
        page.evaluate("refreshAlerts()")  # the same state as `expected` (nothing fires meanwhile: no market)
        shown_panel = alerts_panel(page)

        fills, margin = expected["rules"]
        assert (fills["state"], margin["state"], margin["last_fired"]) == ("delivered", "quiet", None)
        assert shown_panel["rules"] == [
            {"name": "fills", "when": "fill", "state": "delivered", "fired": str(fills["last_fired"]),
             "fired_text": page.evaluate("(ms) => new Date(ms).toLocaleTimeString()", fills["last_fired"]),
             "to": "ops"},
            {"name": "margin", "when": "margin_usage_above", "state": "quiet", "fired": "", "fired_text": "—",
             "to": "ops, chat"}]
        [row] = expected["deliveries"]
        assert shown_panel["deliveries"] == [
            {"id": row["id"], "event_id": row["event_id"], "fired": str(row["created_ms"]), "rule": "fills",
             "account": f"#{account}", "destination": "ops", "status": "delivered", "attempts": str(row["attempts"]),
             "code": "200"}]
        assert [r.headers["webhook-id"] for r in receiver.delivered()] == [row["event_id"]]
        html = page.content()
        for secret in ("HOOKSECRET", "CHATSECRET", SECRET, f"127.0.0.1:{receiver.port}", "json://", "/hook"):
            assert secret not in html
        assert page.locator("#alerts-section").is_visible() and errors == []
