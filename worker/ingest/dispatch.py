"""Which merge a WebSocket account frame calls, and which sections a live channel vouches for (pure).

The upstream socket classifies frames (parse), this module maps them onto one AccountState (merge); counting
frames and waking the store writer stay with the Runtime.
"""
from __future__ import annotations

from worker.ingest.merge import AccountState
from worker.ingest.parse import Frame

# Which snapshot sections a live WS channel vouches for while its connection is healthy.
CHANNEL_SECTIONS: dict[str, tuple[str, ...]] = {
    "account_all": ("positions", "trades"),
    "user_stats": ("stats", "summary"),
    "account_all_orders": ("orders",),
}


def apply_frame(state: AccountState, frame: Frame, now: int) -> None:
    """Merge one account frame into `state`: a snapshot frame replaces, an update merges."""
    payload = frame.payload
    if frame.kind == "account_all":
        if payload["positions"] is not None:
            state.apply_positions(payload["positions"], now)
        if payload["trades"] or frame.snapshot:
            state.apply_trades(payload["trades"], now)
    elif frame.kind == "user_stats":
        state.apply_stats(payload["stats"], now)
    elif frame.kind == "account_all_orders":
        if frame.snapshot:
            state.apply_orders(payload["orders"], "ws", now)
        else:
            state.apply_order_delta(payload["orders"], now)


def confirm_channel(state: AccountState, channel: str, at: int) -> None:
    """A live, healthy subscription to `channel` vouches that its sections were current at `at`."""
    state.confirm(CHANNEL_SECTIONS.get(channel, ()), at)


def flag_channel(state: AccountState, channel: str, message: str) -> None:
    """A frame of `channel` failed validation: flag its sections (their last good data stays)."""
    for name in CHANNEL_SECTIONS.get(channel, ()):
        state.fail(name, f"ws {channel}: {message}", "ws")
