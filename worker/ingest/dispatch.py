"""Which merge a WebSocket account frame calls, and which sections a live channel vouches for (pure).

The upstream socket classifies frames (parse), this module maps them onto one AccountState (merge); counting
frames and waking the store writer stay with the Runtime.
"""
from __future__ import annotations

from worker.ingest.merge import AccountState
from worker.ingest.parse import AccountAllData, Frame, OrdersData, TradesData, UserStatsData
from worker.protocol import Channel

# Which snapshot sections a live WS channel vouches for while its connection is healthy.
CHANNEL_SECTIONS: dict[Channel, tuple[str, ...]] = {
    Channel.ACCOUNT_ALL: ("positions", "trades"),
    Channel.USER_STATS: ("stats", "summary"),
    Channel.ACCOUNT_ALL_ORDERS: ("orders",),
    Channel.ACCOUNT_ALL_TRADES: ("trades", "volume"),
}


def apply_frame(state: AccountState, frame: Frame, now: int) -> None:
    """Merge one account frame into `state`: snapshots replace, updates merge. Control frames and frames
    whose rows failed validation (`data` None) change nothing."""
    match frame.data:
        case AccountAllData(positions=positions, trades=trades):
            if positions is not None:
                state.apply_positions(positions, now)
            if trades or frame.snapshot:  # a snapshot's empty trade list still vouches for the section
                state.apply_trades(trades, now)
        case UserStatsData(stats=stats):
            state.apply_stats(stats, now)
        case TradesData(trades=trades, volume=volume):
            if trades or frame.snapshot:
                state.apply_trades(trades, now)
            if volume is not None:
                state.apply_volume(volume, now)
        case OrdersData(orders=orders) if frame.snapshot:
            state.apply_orders(orders, "ws", now)
        case OrdersData(orders=orders):
            state.apply_order_delta(orders, now)


def confirm_channel(state: AccountState, channel: Channel, at: int) -> None:
    """A live, healthy subscription to `channel` vouches that its sections were current at `at`."""
    state.confirm(CHANNEL_SECTIONS[channel], at)


def flag_channel(state: AccountState, channel: Channel, message: str) -> None:
    """A frame of `channel` failed validation: flag its sections (their last good data stays)."""
    for name in CHANNEL_SECTIONS[channel]:
        state.fail(name, f"ws {channel}: {message}", "ws")
