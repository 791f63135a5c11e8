"""Parsers on recorded payloads: the shared examples, live-like leniencies, and what must be rejected."""
from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from worker.ingest.parse import (
    AccountAllData,
    OrdersData,
    ParseError,
    UserStatsData,
    parse_account,
    parse_frame,
    parse_orders,
)
from worker.protocol import Channel

# Copies of the shared lighter-examples (they pass the SDK's strict validation), kept in-repo for CI.
EXAMPLES = Path(__file__).parent / "payloads"


def _load(name: str) -> dict:
    return orjson.loads((EXAMPLES / name).read_bytes())


@pytest.fixture
def account_body() -> dict:
    return _load("account_ok.json")


@pytest.fixture
def orders_body() -> dict:
    return _load("active_orders_ok.json")


def test_account_example_is_strict_and_verbatim(account_body: dict) -> None:
    parsed = parse_account(orjson.dumps(account_body), 123456)
    assert parsed.strict
    assert parsed.summary["collateral"] == "1000.000000"  # a string, exactly as sent
    assert "positions" not in parsed.summary
    assert parsed.positions == account_body["accounts"][0]["positions"]


def test_account_live_like_leniencies_are_accepted(account_body: dict) -> None:
    acct = account_body["accounts"][0]
    acct["can_rfq_market_ids"] = None
    for key in ("pool_info", "agent_enabled"):
        del acct[key]
    del acct["positions"][0]["margin_set_flag"]
    acct["brand_new_field"] = {"x": 1}
    del account_body["next_cursor"]
    parsed = parse_account(orjson.dumps(account_body), 123456)
    assert not parsed.strict
    assert parsed.summary["brand_new_field"] == {"x": 1}
    assert parsed.positions[0]["position"] == "0.5000"


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b["accounts"][0].__setitem__("collateral", 1000.0), "collateral"),
    (lambda b: b["accounts"][0]["positions"][0].__setitem__("position", 0.5), "position"),
    (lambda b: b["accounts"][0].pop("positions"), "positions"),
    (lambda b: b.pop("accounts"), "accounts"),
    (lambda b: b.__setitem__("code", 21100), "21100"),
    (lambda b: b["accounts"][0].update(index=1, account_index=1), "not in response"),
])
def test_account_missing_essentials_is_an_error(account_body: dict, mutate, message: str) -> None:
    body = copy.deepcopy(account_body)
    mutate(body)
    with pytest.raises(ParseError, match=message):
        parse_account(orjson.dumps(body), 123456)


def test_truncated_body_is_an_error(account_body: dict) -> None:
    raw = orjson.dumps(account_body)
    with pytest.raises(ParseError, match="malformed"):
        parse_account(raw[: len(raw) // 2], 123456)


def test_orders_example_and_failures(orders_body: dict) -> None:
    parsed = parse_orders(orjson.dumps(orders_body))
    assert parsed.strict and parsed.orders[0]["order_index"] == 281476929510110
    drifted = copy.deepcopy(orders_body)
    drifted["orders"][0]["status"] = "cancelled"  # unknown enum: strict fails, we still relay it
    assert not parse_orders(orjson.dumps(drifted)).strict
    with pytest.raises(ParseError, match="orders missing"):
        parse_orders(b'{"code": 200}')  # a body without orders is never "no orders"
    with pytest.raises(ParseError, match="20001"):
        parse_orders((EXAMPLES / "error_missing_auth.json").read_bytes())
    bad = copy.deepcopy(orders_body)
    bad["orders"][0]["price"] = 2352.74
    with pytest.raises(ParseError, match="price"):
        parse_orders(orjson.dumps(bad))


def _position(market: int, size: str) -> dict:
    return {"market_id": market, "symbol": "ETH", "sign": 1, "position": size, "avg_entry_price": "1.0"}


def test_account_all_positions_map_or_array() -> None:
    as_map = {"type": "update/account_all", "channel": "account_all:7", "account": 7,
              "positions": {"1": _position(1, "2"), "0": _position(0, "1")}, "trades": {"0": [{"trade_id": 5}]}}
    frame = parse_frame(orjson.dumps(as_map))
    assert (frame.kind, frame.account, frame.snapshot) == ("account_all", 7, False)
    assert isinstance(frame.data, AccountAllData) and frame.channel is Channel.ACCOUNT_ALL
    assert [p["market_id"] for p in frame.data.positions or []] == [0, 1]
    assert frame.data.trades == [{"trade_id": 5}]
    as_list = {**as_map, "type": "subscribed/account_all", "positions": [_position(0, "1")], "trades": []}
    frame = parse_frame(orjson.dumps(as_list))
    assert frame.snapshot and frame.data == AccountAllData([_position(0, "1")], [])


def test_older_update_account_name_and_bad_rows() -> None:
    frame = parse_frame(b'{"type":"update/account","channel":"account_all:9","positions":{}}')
    assert frame.kind == "account_all" and frame.account == 9 and frame.data == AccountAllData([], [])
    bad = parse_frame(orjson.dumps({"type": "update/account_all", "channel": "account_all:9",
                                    "positions": {"0": {"market_id": "0"}}}))
    assert bad.error and "market_id" in bad.error and bad.data is None


def test_user_stats_and_orders_frames() -> None:
    stats = {"collateral": "1", "portfolio_value": "2", "available_balance": "3", "leverage": "0"}
    frame = parse_frame(orjson.dumps({"type": "update/user_stats", "channel": "user_stats:5", "stats": stats}))
    assert frame.data == UserStatsData(stats)
    order = {"order_index": 2**48 + 1, "market_index": 0, "status": "filled", "price": "1",
             "remaining_base_amount": "0"}
    frame = parse_frame(orjson.dumps({"type": "update/account_all_orders", "channel": "account_all_orders:5",
                                      "orders": {"0": [order]}}))
    assert frame.data == OrdersData([order])


def test_control_and_error_frames() -> None:
    assert parse_frame(b'{"type":"connected","session_id":"x"}').kind == "connected"
    assert parse_frame(b'{"type":"ping"}').kind == "ping"
    shutdown = parse_frame(b'{"type":"shutdown","close_in_ms":1000}')
    assert shutdown.kind == "shutdown" and shutdown.payload["close_in_ms"] == 1000 and shutdown.channel is None
    book = parse_frame(b'{"type":"update/order_book","channel":"order_book:0","order_book":{}}')
    assert book.kind == "order_book" and book.channel is None and book.data is None  # not a channel we track
    nested = parse_frame(b'{"error":{"code":30005,"message":"Invalid Channel"}}')
    assert nested.kind == "error" and nested.payload["code"] == 30005
    typed = parse_frame(b'{"type":"error","error":{"code":20001,"message":"auth field is required"}}')
    assert typed.kind == "error" and "auth" in typed.payload["message"]
    with pytest.raises(ParseError):
        parse_frame(b'{"type": "update/user_stats", "stats": {}')
    with pytest.raises(ParseError):
        parse_frame(b'{"type":"update/user_stats","channel":"user_stats"}')
