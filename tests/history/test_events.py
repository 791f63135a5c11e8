"""The pure derivation of history rows from consecutive snapshots (core/history/events.py)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from core.history import events
from core.history.schema import PORTFOLIO
from tests.history.snapshots import ACCOUNT, order, position, snap, trade


def test_fill_side_role_fee_and_pnl_follow_our_side_of_the_trade() -> None:
    bought = events.fill_row(ACCOUNT, trade(1, 10, ask=1, bid=ACCOUNT, maker_ask=True, bid_account_pnl="1.5"), "ws")
    assert bought is not None
    assert (bought["side"], bought["role"], bought["fee"], bought["realized_pnl"], bought["order_index"]) == \
        ("buy", "taker", "5", "1.5", 901)
    sold = events.fill_row(ACCOUNT, trade(2, 11, ask=ACCOUNT, bid=1, maker_ask=True, ask_account_pnl="-2"), "ws")
    assert sold is not None
    assert (sold["side"], sold["role"], sold["fee"], sold["realized_pnl"], sold["order_index"]) == \
        ("sell", "maker", "2", "-2", 900)


def test_a_trade_of_other_accounts_or_without_ids_is_no_fill() -> None:
    assert events.fill_row(ACCOUNT, trade(1, 10, ask=1, bid=2), "ws") is None
    assert events.fill_row(ACCOUNT, {**trade(1, 10), "trade_id": "1"}, "ws") is None
    assert events.fill_row(ACCOUNT, {**trade(1, 10), "timestamp": None}, "ws") is None


def test_new_fills_are_only_the_trades_the_previous_snapshot_did_not_hold() -> None:
    before = snap(trades=[trade(1, 10)])
    after = snap(trades=[trade(3, 30), trade(2, 20), trade(1, 10)])
    assert [f["trade_id"] for f in events.new_fills(ACCOUNT, before, after)] == [2, 3]
    assert [f["trade_id"] for f in events.new_fills(ACCOUNT, None, after)] == [1, 2, 3]


@pytest.mark.parametrize(("before", "after", "kind"), [
    ("0", "1", "open"), ("1", "2", "increase"), ("2", "1", "reduce"), ("1", "0", "close"), ("1", "-1", "flip"),
    ("-1", "-3", "increase"), ("-3", "-1", "reduce"), ("-1", "2", "flip"), ("1", "1", None)])
def test_position_kind(before: str, after: str, kind: str | None) -> None:
    assert events.position_kind(Decimal(before), Decimal(after)) == kind


def test_position_events_use_the_signed_size_per_market() -> None:
    before = snap(positions=[position(0, "1.0"), position(1, "2.0", sign=-1)])
    after = snap(positions=[position(0, "0.0"), position(1, "1.0", sign=1), position(2, "3.0")])
    rows = events.position_events(ACCOUNT, before, after, 99)
    assert [(r["market_id"], r["kind"], r["size_before"], r["size_after"]) for r in rows] == [
        (0, "close", "1.0", "0.0"), (1, "flip", "-2.0", "1.0"), (2, "open", "0", "3.0")]
    assert rows[0]["avg_entry_price"] is None and rows[2]["avg_entry_price"] == "100.0"
    assert all(r["ts"] == 99 for r in rows)


def test_no_position_events_without_data_on_both_sides() -> None:
    assert events.position_events(ACCOUNT, None, snap(positions=[position(0, "1")]), 1) == []
    assert events.position_events(ACCOUNT, snap(positions=None), snap(positions=[position(0, "1")]), 1) == []
    assert events.position_events(ACCOUNT, snap(positions=[position(0, "1")]), snap(positions=None), 1) == []


def test_order_lifecycle_placed_partly_filled_filled_cancelled() -> None:
    empty = snap(orders=[])
    placed = snap(orders=[order(1, "1.0"), order(2, "1.0")])
    rows = events.order_events(ACCOUNT, empty, placed, 500)
    assert [(r["order_index"], r["kind"], r["ts"]) for r in rows] == [(1, "placed", 111), (2, "placed", 111)]
    partly = snap(orders=[order(1, "0.4", updated_at=333), order(2, "1.0")])
    rows = events.order_events(ACCOUNT, placed, partly, 600)
    assert [(r["order_index"], r["kind"], r["remaining"], r["ts"]) for r in rows] == [(1, "partly_filled", "0.4", 333)]
    fill = {"order_index": 1, "size": "0.4"}
    rows = events.order_events(ACCOUNT, partly, snap(orders=[]), 700, [fill])
    assert [(r["order_index"], r["kind"], r["status"], r["remaining"], r["ts"]) for r in rows] == [
        (1, "filled", "filled", "0", 700), (2, "cancelled", "canceled", "1.0", 700)]


def test_an_order_placed_already_partly_filled_has_both_events() -> None:
    rows = events.order_events(ACCOUNT, snap(orders=[]), snap(orders=[order(5, "0.5", initial="1.0")]), 1)
    assert [r["kind"] for r in rows] == ["placed", "partly_filled"]


def test_no_order_events_without_order_data() -> None:
    assert events.order_events(ACCOUNT, snap(orders=[order(1, "1")]), snap(orders=None), 1) == []
    # Orders first seen (no previous data): placed, but nothing is known to have ended.
    assert [r["kind"] for r in events.order_events(ACCOUNT, snap(orders=None), snap(orders=[order(1, "1")]), 1)] \
        == ["placed"]


def test_funding_payment_is_the_change_of_total_funding_paid_out() -> None:
    before = snap(positions=[position(0, "1", funding="1.500000"), position(1, "1", funding="0.1")])
    after = snap(positions=[position(0, "1", funding="1.250000"), position(1, "1", funding="0.1")])
    assert events.funding_payments(ACCOUNT, before, after, 5) == [
        {"account_index": ACCOUNT, "market_id": 0, "ts": 5, "amount": "-0.250000", "total_paid_out": "1.250000"}]
    assert events.funding_payments(ACCOUNT, None, after, 5) == []


def test_equity_sample_sums_unrealized_pnl_and_keeps_text_verbatim() -> None:
    snapshot = snap(positions=[position(0, "1", upnl="1.250000"), position(1, "1", upnl="-0.250000")],
                    equity="1234.567890", stats={"margin_usage": "12.50", "leverage": "1.75"})
    sample = events.equity_sample(ACCOUNT, snapshot, 42)
    assert sample == {"account_index": ACCOUNT, "ts": 42, "equity": "1234.567890", "equity_f": 1234.56789,
                      "collateral": "900.000000", "upnl": "1.000000", "margin_usage": "12.50", "leverage": "1.75"}
    assert events.equity_sample(ACCOUNT, snap(equity=None), 42) is None
    assert events.equity_sample(ACCOUNT, snap(equity="garbage"), 42) is None


def test_portfolio_sample_is_the_exact_decimal_sum() -> None:
    rows = [{"equity": "0.1", "collateral": "0.1", "upnl": "0"}, {"equity": "0.2", "collateral": "0.2", "upnl": "1"}]
    total = events.portfolio_sample(rows, PORTFOLIO, 9)
    assert total is not None
    assert (total["account_index"], total["equity"], total["collateral"], total["upnl"]) == \
        (PORTFOLIO, "0.3", "0.3", "1")
    assert events.portfolio_sample([], PORTFOLIO, 9) is None


def test_derive_combines_every_table() -> None:
    before = snap(positions=[position(0, "1")], orders=[order(1, "0.5")], trades=[])
    after = snap(positions=[position(0, "1.5")], orders=[], trades=[trade(8, 50, bid_id=1, size="0.5")])
    derived = events.derive(ACCOUNT, before, after, 60)
    assert [f["trade_id"] for f in derived.fills] == [8]
    assert [e["kind"] for e in derived.position_events] == ["increase"]
    assert [(e["kind"], e["order_index"]) for e in derived.order_events] == [("filled", 1)]
    assert derived.funding_payments == []
