"""The pure /stream frame builders: channel parsing, full frames, and update (delta) semantics."""
from __future__ import annotations

import copy

import pytest
from lighter.models import AccountPosition, Order

from app.compat import errors, frames
from tests.app.compat.test_shapes import make_snapshot


def trade(trade_id: int, order_index: int, market_id: int = 0) -> dict:
    return {"trade_id": trade_id, "market_id": market_id, "size": "0.0020", "price": "2352.74",
            "ask_id": order_index, "bid_id": 562949291740362, "timestamp": 1777941383900}


@pytest.mark.parametrize("text, expected", [
    ("account_all/1", ("account_all", 1)), ("user_stats:42", ("user_stats", 42)),
    ("account_all_orders/281474976710404", ("account_all_orders", 281474976710404)),
    ("order_book/0", None), ("account_all/", None), ("account_all/x", None), ("account_all/1/2", None),
    (f"account_all/{2**63}", None), (None, None), (5, None), ("account_all/１", None),
])
def test_parse_channel(text: object, expected: tuple | None) -> None:
    assert frames.parse_channel(text) == expected


def test_subscribed_account_all_is_what_the_sdk_reads() -> None:
    frame = frames.build("account_all", "subscribed", make_snapshot(trades=[trade(1, 5)]))
    assert frame["type"] == "subscribed/account_all" and frame["channel"] == "account_all:123456"
    assert frame["channel"].split(":")[1] == "123456"  # how WsClient recovers the account id
    assert frame["account"] == 123456 and list(frame["positions"]) == ["0"]
    AccountPosition.model_validate(frame["positions"]["0"], strict=True)
    assert frame["trades"] == {"0": [trade(1, 5)]}
    assert frame["funding_histories"] == {} and frame["liquidations"] == [] and frame["shares"] == []
    assert isinstance(frame["timestamp"], int)


def test_account_all_update_carries_every_position_new_trades_and_zeroes_vanished_markets() -> None:
    prev = make_snapshot(trades=[trade(1, 5)])
    btc = dict(prev["sections"]["positions"]["data"][0], market_id=1, symbol="BTC")
    prev["sections"]["positions"]["data"].append(btc)
    snap = copy.deepcopy(prev)
    snap["sections"]["positions"]["data"] = [dict(prev["sections"]["positions"]["data"][0], position="0.6000")]
    snap["sections"]["trades"]["data"].append(trade(2, 6))
    frame = frames.build("account_all", "update", snap, prev)
    assert frame["type"] == "update/account_all"
    assert frame["positions"]["0"]["position"] == "0.6000"
    assert frame["positions"]["1"]["position"] == "0" and frame["positions"]["1"]["symbol"] == "BTC"
    assert frame["trades"] == {"0": [trade(2, 6)]}


def test_account_all_update_is_skipped_when_nothing_in_it_changed() -> None:
    prev = make_snapshot()
    snap = copy.deepcopy(prev)
    snap["sections"]["stats"]["data"]["collateral"] = "1.000000"
    assert frames.build("account_all", "update", snap, prev) is None
    assert frames.build("account_all", "update", snap, None)["type"] == "update/account_all"  # unknown prev: full


def test_user_stats_frames() -> None:
    prev = make_snapshot()
    frame = frames.build("user_stats", "subscribed", prev)
    assert frame["channel"] == "user_stats:123456" and frame["stats"]["portfolio_value"] == "1001.000000"
    assert frames.build("user_stats", "update", copy.deepcopy(prev), prev) is None
    snap = copy.deepcopy(prev)
    snap["sections"]["stats"]["data"]["collateral"] = "1200.000000"
    assert frames.build("user_stats", "update", snap, prev)["stats"]["collateral"] == "1200.000000"


def test_user_stats_from_rest_summary_only_maps_exact_fields() -> None:
    stats = frames.build("user_stats", "subscribed", make_snapshot(stats=False))["stats"]
    assert stats == {"collateral": "1000.000000", "portfolio_value": "1001.000000",
                     "available_balance": "950.123456", "account_trading_mode": 0}
    assert frames.build("user_stats", "subscribed", make_snapshot(stats=False, summary=False)) is None


def test_account_all_orders_subscribed_is_the_full_active_set() -> None:
    frame = frames.build("account_all_orders", "subscribed", make_snapshot())
    assert frame["type"] == "subscribed/account_all_orders" and frame["channel"] == "account_all_orders:123456"
    [order] = frame["orders"]["0"]
    Order.model_validate(order, strict=True)
    assert frames.build("account_all_orders", "subscribed", make_snapshot(orders=False)) is None


def test_account_all_orders_update_is_a_delta_with_inferred_terminal_statuses() -> None:
    prev = make_snapshot()
    first = prev["sections"]["orders"]["data"][0]
    second = dict(first, order_index=first["order_index"] + 1, order_id=str(first["order_index"] + 1))
    prev["sections"]["orders"]["data"].append(second)
    snap = copy.deepcopy(prev)
    new = dict(first, order_index=first["order_index"] + 2, order_id=str(first["order_index"] + 2), market_index=1)
    snap["sections"]["orders"]["data"] = [first, new]  # `second` left the active set
    assert frames.build("account_all_orders", "update", snap, prev)["orders"] == {
        "1": [new], "0": [dict(second, status="canceled")]}
    snap["sections"]["trades"]["data"] = [trade(9, second["order_index"])]
    [closed] = frames.build("account_all_orders", "update", snap, prev)["orders"]["0"]
    assert closed["status"] == "filled" and closed["remaining_base_amount"] == "0.0000"
    assert closed["filled_base_amount"] == closed["initial_base_amount"]
    Order.model_validate(closed, strict=True)
    assert frames.build("account_all_orders", "update", copy.deepcopy(prev), prev) is None


def test_control_and_error_frames() -> None:
    assert frames.connected("abc") == {"type": "connected", "session_id": "abc"}
    assert frames.pong() == {"type": "pong"}
    assert frames.error(errors.INVALID_CHANNEL) == {"type": "error",
                                                      "error": {"code": 30005, "message": "Invalid Channel"}}
    assert errors.auth_required("account_all_orders:1") == errors.LighterError(
        20001, "invalid param : auth field is required: account_all_orders:1")
