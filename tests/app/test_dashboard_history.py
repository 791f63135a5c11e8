"""The dashboard's history panels in headless Chromium against the whole live stack: the fills table page by
page, the equity chart's buckets and ranges, a phone's width; the message when history is unavailable."""
from __future__ import annotations

import contextlib

import pytest
import requests

from tests.app.browser import DESKTOP, PHONE, named, unhinted_wide_tables
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.waiting import wait_for

pytestmark = pytest.mark.browser


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
        assert unhinted_wide_tables(page) == 0, "a table wider than the screen without its hint"
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
