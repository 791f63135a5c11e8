"""Recorded upstream frames through parse_frame and dispatch into one AccountState: pure, in-process.

The ws_*.json payloads are the simulator's frames in Lighter's shapes (payloads/record_ws_frames.py re-records
them): one account's subscribe snapshots, then the updates of a market step that partly fills one of its orders,
cancels another and trades.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.ingest.dispatch import CHANNEL_SECTIONS, apply_frame, confirm_channel, flag_channel
from worker.ingest.merge import AccountState
from worker.ingest.parse import Frame, parse_frame
from worker.protocol import Channel

PAYLOADS = Path(__file__).parent / "payloads"
T0, T1, T2 = 1_000, 2_000, 3_000


def _raw(name: str) -> dict[str, Any]:
    return orjson.loads((PAYLOADS / f"ws_{name}.json").read_bytes())


def _frame(name: str, **changes: Any) -> Frame:
    """The recorded frame as it arrives on the socket (bytes), optionally edited."""
    return parse_frame(orjson.dumps({**_raw(name), **changes}))


def _rows(by_market: dict[str, list[dict[str, Any]]] | dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Lighter's per-market maps flattened: {"1": row} or {"1": [rows]}."""
    rows: list[dict[str, Any]] = []
    for value in by_market.values():
        rows.extend(value if isinstance(value, list) else [value])
    return rows


ACCOUNT = _raw("account_all_subscribed")["account"]


def _subscribed(trades_channel: bool = False) -> AccountState:
    """An account whose subscriptions just delivered their snapshots (account_all_trades' too if asked)."""
    state = AccountState(ACCOUNT, public_only=False)
    names = ["account_all_subscribed", "user_stats_subscribed", "account_all_orders_subscribed"]
    for name in names + (["account_all_trades_subscribed"] if trades_channel else []):
        frame = _frame(name)
        assert frame.account == ACCOUNT and frame.snapshot and frame.error is None
        apply_frame(state, frame, T0)
    state.take()
    return state


def _order_key(row: dict[str, Any]) -> tuple[int, int]:
    return row["market_index"], row["order_index"]


def test_recorded_frames_are_the_channels_in_lighter_shapes() -> None:
    kinds = {name: _frame(name) for name in ("account_all_subscribed", "account_all_update", "user_stats_update",
                                             "account_all_orders_subscribed", "account_all_orders_update")}
    assert [f.channel for f in kinds.values()] == [Channel.ACCOUNT_ALL, Channel.ACCOUNT_ALL, Channel.USER_STATS,
                                                    Channel.ACCOUNT_ALL_ORDERS, Channel.ACCOUNT_ALL_ORDERS]
    assert [f.snapshot for f in kinds.values()] == [True, False, False, True, False]
    assert isinstance(_raw("account_all_update")["positions"], dict)  # per-market maps, as Lighter sends them
    assert isinstance(_raw("account_all_orders_update")["orders"], dict)
    assert set(CHANNEL_SECTIONS) == set(Channel)  # every channel we subscribe to vouches for some sections


def test_snapshots_fill_positions_trades_stats_summary_and_orders() -> None:
    state = AccountState(ACCOUNT, public_only=False)
    apply_frame(state, _frame("account_all_subscribed"), T0)
    positions = state.section("positions")
    assert positions["data"] == sorted(_rows(_raw("account_all_subscribed")["positions"]),
                                       key=lambda row: row["market_id"])
    assert positions["source"] == "ws" and positions["as_of"] == T0 and positions["error"] is None
    # No trades in a snapshot is still news: the section is known to be empty, not unknown.
    assert state.section("trades") == {"source": "ws", "as_of": T0, "data": [], "error": None}
    assert state.changed and state.snapshot["as_of"] == T0

    apply_frame(state, _frame("user_stats_subscribed"), T0)
    stats = _raw("user_stats_subscribed")["stats"]
    assert state.section("stats")["data"] == stats
    assert state.section("summary")["data"] == {"collateral": stats["collateral"],
                                                "available_balance": stats["available_balance"],
                                                "total_asset_value": stats["portfolio_value"]}

    apply_frame(state, _frame("account_all_orders_subscribed"), T0)
    orders = _rows(_raw("account_all_orders_subscribed")["orders"])
    assert len(orders) > 1 and state.section("orders")["data"] == sorted(orders, key=_order_key)
    assert state.section("orders")["source"] == "ws"


def test_account_all_update_replaces_positions_and_adds_trades() -> None:
    state = _subscribed()
    update = _raw("account_all_update")
    apply_frame(state, _frame("account_all_update"), T1)
    assert state.section("positions")["data"] == sorted(_rows(update["positions"]), key=lambda row: row["market_id"])
    trades = _rows(update["trades"])
    assert trades and state.section("trades")["data"] == trades and state.section("trades")["as_of"] == T1
    assert state.changed

    # The same fill again (a replayed frame) is not a second trade, and unchanged rows only confirm.
    state.take()
    apply_frame(state, _frame("account_all_update"), T2)
    assert state.section("trades")["data"] == trades and state.section("trades")["as_of"] == T2
    assert state.confirmed and not state.changed
    apply_frame(state, _frame("account_all_update", positions={}), T2)
    assert state.section("positions")["data"] == [] and state.changed  # an empty map: every position closed


def test_account_all_update_without_positions_key_keeps_them() -> None:
    state = _subscribed()
    raw = _raw("account_all_update")
    del raw["positions"]
    apply_frame(state, parse_frame(orjson.dumps(raw)), T1)
    assert state.section("positions")["as_of"] == T0  # untouched
    assert state.section("trades")["data"] == _rows(raw["trades"])


def test_user_stats_update_moves_stats_and_the_summary_money() -> None:
    state = _subscribed()
    stats = _raw("user_stats_update")["stats"]
    apply_frame(state, _frame("user_stats_update"), T1)
    assert state.section("stats") == {"source": "ws", "as_of": T1, "data": stats, "error": None}
    summary = state.section("summary")["data"]
    assert isinstance(summary, dict)
    assert (summary["collateral"], summary["available_balance"], summary["total_asset_value"]) == (
        stats["collateral"], stats["available_balance"], stats["portfolio_value"])


def test_orders_delta_updates_keeps_and_removes_terminal() -> None:
    state = _subscribed()
    before = {row["order_index"]: row for row in _rows(_raw("account_all_orders_subscribed")["orders"])}
    delta = _rows(_raw("account_all_orders_update")["orders"])
    terminal = [row for row in delta if row["status"] not in ("open", "pending", "in-progress")]
    still_open = [row for row in delta if row["status"] == "open"]
    assert terminal and all(row["order_index"] in before for row in terminal)  # the delta ends a listed order
    assert still_open

    apply_frame(state, _frame("account_all_orders_update"), T1)
    expected = dict(before)
    for row in still_open:
        expected[row["order_index"]] = row
    for row in terminal:
        del expected[row["order_index"]]
    orders = state.section("orders")
    assert orders["data"] == sorted(expected.values(), key=_order_key)
    assert orders["source"] == "ws" and orders["as_of"] == T1 and state.changed
    assert {row["order_index"] for row in terminal}.isdisjoint(state.orders)

    # A later snapshot (a resubscribe) replaces the whole list, whatever deltas did.
    apply_frame(state, _frame("account_all_orders_subscribed"), T2)
    assert state.section("orders")["data"] == sorted(before.values(), key=_order_key)


def test_a_frame_that_failed_validation_changes_nothing() -> None:
    state = _subscribed()
    frame = _frame("account_all_orders_update", orders={"0": [{"order_index": "not an int"}]})
    assert frame.error and frame.data is None
    apply_frame(state, frame, T1)
    assert not state.changed and not state.confirmed and state.section("orders")["as_of"] == T0


@pytest.mark.parametrize("channel", list(Channel))
def test_confirm_and_flag_act_on_the_channels_sections(channel: Channel) -> None:
    state = _subscribed(trades_channel=True)
    confirm_channel(state, channel, T1)
    for name in ("summary", "positions", "orders", "stats", "trades", "volume"):
        as_of = state.section(name)["as_of"]
        assert as_of == (T1 if name in CHANNEL_SECTIONS[channel] else T0), name
    assert state.confirmed and not state.changed

    flag_channel(state, channel, "bad rows")
    for name in CHANNEL_SECTIONS[channel]:
        section = state.section(name)
        assert section["error"] == f"ws {channel}: bad rows" and section["data"] is not None  # data stays
    assert state.changed


def test_account_all_trades_fills_trades_and_volume() -> None:
    state = _subscribed()
    snapshot, update = _raw("account_all_trades_subscribed"), _raw("account_all_trades_update")
    apply_frame(state, _frame("account_all_trades_subscribed"), T1)
    listed = _rows(snapshot["trades"])
    assert listed and {t["trade_id"] for t in listed} <= {t["trade_id"] for t in state.section("trades")["data"]}
    volume = state.section("volume")
    assert volume["source"] == "ws" and volume["as_of"] == T1
    assert volume["data"] == {k: snapshot[k] for k in ("daily_volume", "weekly_volume", "monthly_volume",
                                                       "total_volume")}
    apply_frame(state, _frame("account_all_trades_update"), T2)
    newest = state.section("trades")["data"][0]
    assert newest["trade_id"] in {t["trade_id"] for t in _rows(update["trades"])}
    assert state.section("volume")["data"]["total_volume"] == update["total_volume"] > snapshot["total_volume"]
    # A volume that is not a number is a bad frame: nothing merged, the last good volume stays.
    bad = _frame("account_all_trades_update", total_volume={"x": 1})
    assert bad.error and bad.data is None


def test_labels_ride_on_the_snapshot() -> None:
    state = AccountState(ACCOUNT, public_only=True, name="main", group=2)
    assert (state.snapshot["name"], state.snapshot["group"]) == ("main", 2) and state.changed
    state.take()
    renamed = AccountState(ACCOUNT, public_only=True, previous=state.snapshot, name="hedge", group=2)
    assert renamed.snapshot["name"] == "hedge" and renamed.changed  # a new label is written at once
    same = AccountState(ACCOUNT, public_only=True, previous=renamed.snapshot, name="hedge", group=2)
    assert not same.changed
