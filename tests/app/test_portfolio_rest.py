"""/api/portfolio and the per-kind routes against the real gunicorn server and a real file store, fed the way the
worker feeds it (snapshots with Lighter's strings); the arithmetic itself is held by tests/core/test_portfolio.py."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests

from core.snapshot import new_snapshot, now_ms
from tests.app.conftest import Feeder, open_ws, until
from tests.fixtures.web import run_web
from tests.waiting import wait_for

POS_11 = [{"market_id": 0, "symbol": "ETH", "sign": 1, "position": "0.5000", "avg_entry_price": "2350.10",
           "position_value": "1176.050000", "unrealized_pnl": "1.000000", "realized_pnl": "0.000000",
           "liquidation_price": "400.12", "initial_margin_fraction": "5.00"}]
POS_22 = [{"market_id": 1, "symbol": "BTC", "sign": -1, "position": "0.10000", "avg_entry_price": "96000.0",
           "position_value": "9650.000000", "unrealized_pnl": "-50.000000", "realized_pnl": "2.000000",
           "liquidation_price": "120000.0", "initial_margin_fraction": "2.00"}]
SUMMARY = {11: {"total_asset_value": "1001.000000", "collateral": "1000.000000", "available_balance": "950.000000"},
           22: {"total_asset_value": "5000.000000", "collateral": "5050.000000", "available_balance": "4000.000000"}}
TRADE = {"trade_id": 7, "trade_id_str": "7", "market_id": 0, "size": "0.1000", "price": "2351.00",
         "usd_amount": "235.100000", "ask_account_id": 1, "bid_account_id": 11}


def put(feeder: Feeder, index: int, name: str | None, positions: list, as_of: int | None = None,
        trades: list | None = None, volume: dict | None = None) -> int:
    """Write a full snapshot the way the worker does (next seq, prev_seq per account)."""
    feeder.seq += 1
    at = now_ms() if as_of is None else as_of
    snap = new_snapshot(index, public_only=False, name=name, group=1 if name else None)
    snap.update(prev_seq=feeder.prev.get(index), as_of=at)
    sections: dict[str, Any] = {"summary": SUMMARY[index], "positions": positions, "orders": [],
                                "trades": trades or [], "volume": volume}
    for section, data in sections.items():
        if data is not None:
            snap["sections"][section].update(source="ws", as_of=at, data=data)
    feeder.store.put_account(snap, feeder.seq)
    feeder.prev[index] = feeder.seq
    return feeder.seq


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # CACHE_TTL 60 s: data written before the server starts stays fresh however slow the machine is.
    store = {"CACHE_DIR": str(tmp_path_factory.mktemp("portfolio") / "store"), "RATE_LIMIT": "1000/minute",
             "CACHE_TTL": "60"}
    feeder = Feeder(store)
    feeder.store.set_tracked([22, 11])  # configuration order, not numeric order
    put(feeder, 22, None, POS_22, volume={"daily_volume": 0.2, "weekly_volume": 1, "monthly_volume": 2,
                                          "total_volume": 3})
    put(feeder, 11, "main", POS_11, trades=[{**TRADE, "timestamp": now_ms()}],
        volume={"daily_volume": 0.1, "weekly_volume": 1, "monthly_volume": 2, "total_volume": 3})
    feeder.status()
    # The web knows 22's name from its settings only (a snapshot written before names were stored).
    with run_web({**store, "Lighter_2_hedge_Account_Index": "22", "Lighter_1_main_Account_Index": "11"}) as web:
        yield web, feeder


def get(url: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(url + path, timeout=5, **kwargs)


def portfolio_at(url: str, seq: int) -> dict:
    """The portfolio once the web serves the write at `seq` (REST reads the mirror, a wake-up behind)."""
    return wait_for(lambda: (b := get(url, "/api/portfolio").json()) and max(a["seq"] for a in b["accounts"]) >= seq
                    and b, 5, f"portfolio at seq {seq}")


def test_portfolio_sums_the_accounts_exactly(served):
    web, feeder = served
    response = get(web.url, "/api/portfolio")
    assert response.status_code == 200 and response.headers["ETag"].startswith('W/"portfolio-')
    body = response.json()
    accounts = body["accounts"]
    assert [(a["account_index"], a["name"], a["group"]) for a in accounts] == [(22, "hedge", 2), (11, "main", 1)]
    for key in ("equity", "collateral", "available_balance", "unrealized_pnl", "realized_pnl", "margin_used"):
        assert Decimal(body["total"][key]) == sum(Decimal(a[key]) for a in accounts), key
        assert isinstance(body["total"][key], str)
    assert body["total"]["equity"] == "6001.000000" and body["total"]["volume_24h"] == "0.3"
    assert body["total"]["margin_usage_pct"] == "4.20"  # (58.8025 + 193) / 6001 = 4.196%
    assert body["total"]["worst_liquidation_distance_pct"] == "24.35" and body["total"]["stale"] is False
    eth = accounts[1]["positions"][0]
    assert (eth["side"], eth["mark_price"], eth["liquidation_distance_pct"]) == ("long", "2352.10", "82.99")
    fill = body["recent_fills"][0]
    assert (fill["account_index"], fill["name"], fill["side"], fill["trade_id"]) == (11, "main", "buy", "7")


def test_portfolio_etag_304_and_a_write_changes_it(served):
    web, feeder = served
    first = get(web.url, "/api/portfolio")
    again = get(web.url, "/api/portfolio", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    seq = put(feeder, 11, "main", [{**POS_11[0], "unrealized_pnl": "3.000000"}])
    body = portfolio_at(web.url, seq)
    assert Decimal(body["total"]["unrealized_pnl"]) == Decimal("-47")  # 3 - 50
    changed = get(web.url, "/api/portfolio", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]


def test_a_stale_account_makes_the_total_stale_with_its_age(served):
    web, feeder = served
    seq = put(feeder, 22, None, POS_22, as_of=now_ms() - 600_000)
    try:
        total = portfolio_at(web.url, seq)["total"]
        assert total["stale"] is True and total["stale_accounts"] == [22] and total["age_ms"] >= 600_000
        assert get(web.url, "/api/portfolio").headers["ETag"].endswith('-stale"')
    finally:
        fresh = put(feeder, 22, None, POS_22)
        portfolio_at(web.url, fresh)  # the next tests start from a fresh book


@pytest.mark.parametrize("kind", ["positions", "orders", "trades"])
def test_per_kind_routes_with_etags(served, kind):
    web, feeder = served
    one = get(web.url, f"/api/accounts/11/{kind}")
    assert one.status_code == 200, one.text
    body = one.json()
    stored = feeder.store.account(11)["sections"][kind]
    assert body["data"] == stored["data"] and body["kind"] == kind and body["name"] == "main"
    assert {"source", "as_of", "age_ms", "stale", "error", "seq"} <= body.keys()
    assert one.headers["ETag"].startswith(f'W/"{kind}-')
    assert get(web.url, f"/api/accounts/11/{kind}", headers={"If-None-Match": one.headers["ETag"]}).status_code == 304
    every = get(web.url, f"/api/{kind}")
    assert every.status_code == 200
    assert [(a["account_index"], a["name"]) for a in every.json()["accounts"]] == [(22, "hedge"), (11, "main")]
    assert get(web.url, f"/api/{kind}", headers={"If-None-Match": every.headers["ETag"]}).status_code == 304


@pytest.mark.parametrize("path,status", [("/api/accounts/11/nope", 404), ("/api/accounts/33/positions", 404),
                                         ("/api/accounts/x/positions", 400), ("/api/nope", 404)])
def test_bad_kind_routes_are_json_errors(served, path, status):
    web, _ = served
    response = get(web.url, path)
    assert response.status_code == status and response.json()["status"] == status and response.json()["message"]



def _without_clock(body: dict) -> dict:
    """A portfolio minus what moves with the clock alone (server_time, ages)."""
    out = {**body, "server_time": None, "total": {**body["total"], "age_ms": None}}
    out["accounts"] = [{**a, "age_ms": None} for a in body["accounts"]]
    return out


def test_ws_portfolio_subscription_pushes_what_rest_serves(served):
    web, feeder = served
    with open_ws(web.ws_url + "?portfolio=1") as ws:
        first = until(ws, lambda m: m["type"] == "portfolio")["portfolio"]
        assert _without_clock(first) == _without_clock(get(web.url, "/api/portfolio").json())
        seq = put(feeder, 11, "main", [{**POS_11[0], "unrealized_pnl": "7.000000"}])
        pushed = until(ws, lambda m: m["type"] == "portfolio"
                       and max(a["seq"] for a in m["portfolio"]["accounts"]) >= seq)["portfolio"]
        assert Decimal(pushed["total"]["unrealized_pnl"]) == Decimal("-43")  # 7 - 50
        assert _without_clock(pushed) == _without_clock(portfolio_at(web.url, seq))
    with open_ws(web.ws_url) as plain:  # not asked for: never sent
        assert until(plain, lambda m: m["type"] == "status")
        with pytest.raises(TimeoutError):
            until(plain, lambda m: m["type"] == "portfolio", deadline_s=1.5)


def test_ws_portfolio_turns_stale_with_time_alone(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "CACHE_TTL": "2"}
    feeder = Feeder(env)
    feeder.store.set_tracked([11])
    put(feeder, 11, "main", POS_11)
    feeder.status()
    with run_web(env) as web, open_ws(web.ws_url + "?portfolio=1") as ws:
        seq = put(feeder, 11, "main", POS_11)  # fresh now; the web started after CACHE_TTL may have passed
        fresh = until(ws, lambda m: m["type"] == "portfolio" and m["portfolio"]["accounts"][0]["seq"] == seq)
        assert fresh["portfolio"]["total"]["stale"] is False
        # No write: the account ages past CACHE_TTL and a push says so.
        stale = until(ws, lambda m: m["type"] == "portfolio" and m["portfolio"]["total"]["stale"], 10)
        assert stale["portfolio"]["total"]["stale_accounts"] == [11]


def test_ws_portfolio_flag_is_checked(served):
    web, _ = served
    with open_ws(web.ws_url + "?portfolio=yes") as ws:
        message = until(ws, lambda m: m["type"] == "error")
        assert message["code"] == "bad_query" and "portfolio" in message["message"]
