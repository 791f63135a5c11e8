"""Merging parsed upstream data into a snapshot: deltas, terminal statuses, stats, errors that keep data."""
from __future__ import annotations

from pathlib import Path

import orjson

from core.snapshot import new_snapshot
from worker.ingest.merge import AccountState
from worker.ingest.parse import parse_account, parse_orders

PAYLOADS = Path(__file__).parent / "payloads"


def _order(index: int, status: str = "open", market: int = 0) -> dict:
    return {"order_index": index, "market_index": market, "status": status, "price": "1",
            "remaining_base_amount": "1"}


def _state() -> AccountState:
    state = AccountState(123456, public_only=False)
    body = parse_account((PAYLOADS / "account_ok.json").read_bytes(), 123456)
    state.apply_account(body.summary, body.positions, now=1000)
    state.take()
    return state


def test_rest_account_fills_summary_and_positions() -> None:
    state = _state()
    summary = state.section("summary")
    assert summary["source"] == "rest" and summary["as_of"] == 1000 and summary["error"] is None
    assert summary["data"]["available_balance"] == "950.123456"
    assert state.section("positions")["data"][0]["symbol"] == "ETH"
    assert state.snapshot["as_of"] == 1000


def test_same_data_only_confirms_new_data_changes() -> None:
    state = _state()
    body = parse_account((PAYLOADS / "account_ok.json").read_bytes(), 123456)
    state.apply_account(body.summary, body.positions, now=2000)
    assert not state.changed and state.confirmed and state.section("summary")["as_of"] == 2000
    state.take()
    state.apply_account({**body.summary, "collateral": "5"}, body.positions, now=3000)
    assert state.changed


def test_failure_keeps_data_and_age() -> None:
    state = _state()
    state.fail("summary", "rest account: HTTP 503", "rest")
    assert state.changed
    summary = state.section("summary")
    assert summary["data"]["collateral"] == "1000.000000" and summary["as_of"] == 1000
    assert summary["error"] == "rest account: HTTP 503"
    state.take()
    state.fail("summary", "rest account: HTTP 503", "rest")
    assert not state.changed  # the same flag again is not news


def test_order_deltas_and_terminal_statuses() -> None:
    state = _state()
    state.apply_orders(parse_orders((PAYLOADS / "active_orders_ok.json").read_bytes()).orders, "rest", 1000)
    first = state.section("orders")["data"][0]["order_index"]
    state.apply_order_delta([_order(2**48 + 5, "open", market=1), _order(2**48 + 6, "pending")], 1100)
    by_market_then_index = [2**48 + 6, first, 2**48 + 5]
    assert [o["order_index"] for o in state.section("orders")["data"]] == by_market_then_index
    state.apply_order_delta([_order(first, "filled"), _order(2**48 + 6, "canceled-post-only")], 1200)
    assert [o["order_index"] for o in state.section("orders")["data"]] == [2**48 + 5]
    assert state.section("orders")["source"] == "ws"
    state.apply_orders([], "ws", 1300)  # a snapshot replaces the map
    assert state.section("orders")["data"] == [] and state.orders == {}


def test_user_stats_update_summary_money_fields() -> None:
    state = _state()
    stats = {"collateral": "7", "portfolio_value": "8", "available_balance": "9", "leverage": "1"}
    state.apply_stats(stats, 1500)
    summary = state.section("summary")["data"]
    assert (summary["collateral"], summary["total_asset_value"], summary["available_balance"]) == ("7", "8", "9")
    assert summary["l1_address"].startswith("0x")  # the rest of REST's summary stays
    assert state.section("stats")["data"] == stats


def test_trades_dedupe_newest_first_and_cap() -> None:
    state = _state()
    state.apply_trades([{"trade_id": i, "timestamp": i} for i in range(40)], 1)
    state.apply_trades([{"trade_id": i, "timestamp": i} for i in range(30, 70)], 2)
    data = state.section("trades")["data"]
    assert len(data) == 50 and data[0]["trade_id"] == 69 and len({t["trade_id"] for t in data}) == 50


def test_confirm_moves_as_of_without_touching_flags() -> None:
    state = _state()
    state.fail("positions", "rest account: timeout", "rest")
    state.take()
    state.confirm(("positions", "orders"), 5000)
    assert state.section("positions")["as_of"] == 5000 and state.section("positions")["error"]
    assert state.section("orders")["as_of"] is None  # no data, nothing to vouch for
    assert state.confirmed and not state.changed


def test_resume_from_previous_snapshot() -> None:
    previous = _state().snapshot
    state = AccountState(123456, public_only=True, previous=previous)
    assert state.section("summary")["data"]["collateral"] == "1000.000000" and state.snapshot["public_only"]
    other = AccountState(99, public_only=False, previous=previous)  # someone else's snapshot: start empty
    assert other.snapshot == {**new_snapshot(99, False)}
    assert orjson.dumps(state.snapshot)  # JSON-safe


def test_rest_flag_survives_ws_data_until_rest_succeeds() -> None:
    state = _state()
    state.fail("positions", "rest account: HTTP 503", "rest")
    state.apply_positions([], 2000)
    assert state.section("positions")["error"] == "rest account: HTTP 503"  # reconciliation still broken
    state.fail("stats", "ws user_stats: bad row", "ws")
    state.apply_stats({"collateral": "1", "portfolio_value": "1", "available_balance": "1"}, 2100)
    assert state.section("stats")["error"] is None  # the channel it came from delivered good data
    body = parse_account((PAYLOADS / "account_ok.json").read_bytes(), 123456)
    state.apply_account(body.summary, body.positions, 3000)
    assert state.section("positions")["error"] is None


def test_rest_response_older_than_a_ws_push_does_not_roll_it_back() -> None:
    state = _state()
    state.apply_orders([_order(1)], "rest", 1000)
    state.fail("orders", "rest orders: HTTP 503", "rest")
    state.apply_order_delta([_order(2)], 2000)  # pushed while a REST request sent at 1500 was in flight
    state.apply_orders([_order(1)], "rest", 2100, requested_at=1500)
    assert [o["order_index"] for o in state.section("orders")["data"]] == [1, 2]
    assert state.section("orders")["error"] is None  # REST answered, so its flag goes
    stats = {"collateral": "7", "portfolio_value": "8", "available_balance": "9"}
    state.apply_stats(stats, 2200)
    state.apply_positions([], 2200)
    body = parse_account((PAYLOADS / "account_ok.json").read_bytes(), 123456)
    state.apply_account({**body.summary, "total_order_count": 99}, body.positions, 2300, requested_at=2150)
    summary = state.section("summary")["data"]
    assert summary["collateral"] == "7" and summary["total_order_count"] == 99  # fresh money, REST the rest
    assert state.section("positions")["data"] == []
    state.apply_account(body.summary, body.positions, 2500, requested_at=2400)  # nothing pushed since
    assert state.section("positions")["data"] == body.positions
