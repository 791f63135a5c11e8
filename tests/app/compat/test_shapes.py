"""The pure REST builders: every body passes the official SDK's strict `model_validate`."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from lighter.models import DetailedAccounts, Orders, ResultCode, Status

from app.compat import shapes

# Copies of Lighter's own example payloads (payloads that pass the SDK's strict checks), kept with the tests.
EXAMPLES = Path(__file__).parent / "examples"


def load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def make_snapshot(index: int = 123456, summary: bool = True, orders: bool = True, stats: bool = True,
                  trades: list | None = None) -> dict:
    """A store snapshot shaped as the worker writes it, from Lighter's own example payloads."""
    account = copy.deepcopy(load("account_ok.json")["accounts"][0])
    positions = account.pop("positions")
    order_rows = copy.deepcopy(load("active_orders_ok.json")["orders"])

    def section(data):
        return {"source": "rest", "as_of": 1777941383576, "data": data, "error": None}

    stats_data = {"collateral": "1000.000000", "portfolio_value": "1001.000000", "leverage": "1.17",
                  "available_balance": "950.123456", "margin_usage": "5.87", "buying_power": "19002.46",
                  "account_trading_mode": 0,
                  "cross_stats": {"collateral": "1000.000000", "portfolio_value": "1001.000000", "leverage": "1.17",
                                  "available_balance": "950.123456", "margin_usage": "5.87",
                                  "buying_power": "19002.46"},
                  "total_stats": {"collateral": "1000.000000", "portfolio_value": "1001.000000", "leverage": "1.17",
                                  "available_balance": "950.123456", "margin_usage": "5.87",
                                  "buying_power": "19002.46"}}
    return {"schema": 1, "account_index": index, "seq": 7, "prev_seq": 3, "written_at": 1777941383600,
            "as_of": 1777941383576, "public_only": not orders,
            "sections": {"summary": section(account if summary else None), "positions": section(positions),
                         "orders": section(order_rows if orders else None),
                         "stats": section(stats_data if stats else None), "trades": section(trades or [])}}


def test_detailed_accounts_from_full_snapshot_is_strict_valid_and_verbatim() -> None:
    snapshot = make_snapshot()
    body = shapes.detailed_accounts([snapshot])
    DetailedAccounts.model_validate(body, strict=True)
    assert body == load("account_ok.json")  # nothing invented when Lighter sent everything


def test_ws_only_snapshot_is_completed_from_stats() -> None:
    body = shapes.detailed_accounts([make_snapshot(summary=False)])
    DetailedAccounts.model_validate(body, strict=True)
    account = body["accounts"][0]
    assert account["index"] == account["account_index"] == 123456
    assert account["collateral"] == "1000.000000" and account["total_asset_value"] == "1001.000000"
    assert account["available_balance"] == "950.123456" and account["total_order_count"] == 1
    assert account["positions"][0]["symbol"] == "ETH"


def test_empty_snapshot_still_validates() -> None:
    snapshot = make_snapshot(summary=False, stats=False, orders=False)
    snapshot["sections"]["positions"]["data"] = None
    body = shapes.detailed_accounts([snapshot])
    DetailedAccounts.model_validate(body, strict=True)
    assert body["accounts"][0]["positions"] == []


def test_live_like_gaps_are_filled_without_touching_sent_values() -> None:
    snapshot = make_snapshot()
    summary = snapshot["sections"]["summary"]["data"]
    for key in ("pool_info", "agent_enabled", "bo_positions"):
        summary.pop(key)
    summary["can_rfq_market_ids"] = None
    snapshot["sections"]["positions"]["data"][0].pop("margin_set_flag")
    body = shapes.detailed_accounts([snapshot])
    DetailedAccounts.model_validate(body, strict=True)
    account = body["accounts"][0]
    assert account["can_rfq_market_ids"] == [] and account["pool_info"]["total_shares"] == 0
    assert account["positions"][0]["margin_set_flag"] == 0
    assert account["collateral"] == "1000.000000"


def test_active_only_hides_flat_markets() -> None:
    snapshot = make_snapshot()
    flat = dict(snapshot["sections"]["positions"]["data"][0], market_id=1, symbol="BTC", position="0.00000")
    snapshot["sections"]["positions"]["data"].append(flat)
    assert len(shapes.detailed_account(snapshot)["positions"]) == 2
    assert [p["market_id"] for p in shapes.detailed_account(snapshot, active_only=True)["positions"]] == [0]


def test_orders_body_is_strict_valid_and_filters_by_market() -> None:
    body, status = shapes.orders_body(make_snapshot())
    assert status == 200
    Orders.model_validate(body, strict=True)
    assert body == load("active_orders_ok.json")
    assert shapes.orders_body(make_snapshot(), market_id=1)[0]["orders"] == []
    assert shapes.orders_body(make_snapshot(), market_type="spot")[0]["orders"] == []
    assert len(shapes.orders_body(make_snapshot(), market_type="perp")[0]["orders"]) == 1


def test_orders_missing_fields_are_completed() -> None:
    snapshot = make_snapshot()
    order = snapshot["sections"]["orders"]["data"][0]
    for key in ("order_id", "side", "owner_account_index", "market_kind"):
        order.pop(key)
    body, _ = shapes.orders_body(snapshot)
    Orders.model_validate(body, strict=True)
    row = body["orders"][0]
    assert (row["order_id"], row["side"], row["owner_account_index"]) == ("281476929510110", "sell", 123456)


@pytest.mark.parametrize("public_only, expected", [(True, 400), (False, 503)])
def test_unknown_orders_are_an_error_not_an_empty_list(public_only: bool, expected: int) -> None:
    snapshot = make_snapshot(orders=False)
    snapshot["public_only"] = public_only
    body, status = shapes.orders_body(snapshot)
    assert status == expected and "orders" not in body
    ResultCode.model_validate(body, strict=True)


def test_status_and_errors_match_lighter() -> None:
    Status.model_validate(shapes.status_body(1777941383), strict=True)
    body, status = shapes.error_body(shapes.AUTH_MISSING)
    assert (body, status) == (load("error_missing_auth.json"), 400)
    assert shapes.error_body(shapes.ACCOUNT_NOT_FOUND) == ({"code": 21100, "message": "account not found"}, 400)
    assert shapes.error_body(shapes.AUTH_INVALID)[1] == 401


@pytest.mark.parametrize("by, value, expected", [
    ("index", "42", ("index", 42)),
    ("l1_address", "0x" + "Ab" * 20, ("l1_address", "0x" + "ab" * 20)),
])
def test_parse_account_query_accepts(by: str, value: str, expected: tuple) -> None:
    assert shapes.parse_account_query(by, value) == expected


@pytest.mark.parametrize("by, value, code", [
    ("index", "x", 20001), ("index", "-1", 20001), ("index", "²", 20001), ("index", str(2**63), 20001),
    ("index", None, 20001), ("name", "1", 20001), (None, None, 20001),
    ("l1_address", "0x12", 21103), ("l1_address", "0x" + "zz" * 20, 21103),
])
def test_parse_account_query_rejects(by: str | None, value: str | None, code: int) -> None:
    with pytest.raises(shapes.LighterError) as caught:
        shapes.parse_account_query(by, value)
    assert caught.value.error[1] == code


def test_matches_l1_needs_a_rest_summary() -> None:
    address = "0x1111111111111111111111111111111111111111"
    assert shapes.matches_l1(make_snapshot(), address)
    assert not shapes.matches_l1(make_snapshot(summary=False), address)
