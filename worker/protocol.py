"""Lighter's wire vocabulary as the worker uses it, named once: channels, control frames, order statuses, headers.

Members are `StrEnum`s, so they compare equal to, format as and serialize (orjson) as the strings on the wire.
"""
from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """The account channels we subscribe to. Subscribed as `name/index`, echoed in frames as `name:index`."""

    ACCOUNT_ALL = "account_all"
    USER_STATS = "user_stats"
    ACCOUNT_ALL_ORDERS = "account_all_orders"  # needs an auth token
    # Fills with the account's 24 h / 7 d / 30 d / total volume (public per Lighter's asyncapi.json; see
    # docs/lighter-protocol.md). account_all's `trades` is often empty on the live venue: this is the fills' source.
    ACCOUNT_ALL_TRADES = "account_all_trades"

    def subscription(self, account: int) -> str:
        """The channel as a subscribe message names it."""
        return f"{self}/{account}"

    def echoed(self, account: int) -> str:
        """The channel as frames (and error messages) name it."""
        return f"{self}:{account}"


# An older docs example names account_all updates `update/account`.
_LEGACY_CHANNEL_NAMES = {"account": Channel.ACCOUNT_ALL}


def channel_named(name: str) -> Channel | None:
    """The Channel a frame type's `<prefix>/<name>` names, or None for a channel we do not track."""
    legacy = _LEGACY_CHANNEL_NAMES.get(name)
    if legacy is not None:
        return legacy
    try:
        return Channel(name)
    except ValueError:
        return None


class Control(StrEnum):
    """Frame types that are not channel data (frames in both directions)."""

    CONNECTED = "connected"
    PING = "ping"
    PONG = "pong"
    SHUTDOWN = "shutdown"
    ERROR = "error"
    SUBSCRIBE = "subscribe"


def control_named(kind: str) -> Control | str:
    """The Control member for a frame type without a channel, or the type as sent (unsubscribed...)."""
    try:
        return Control(kind)
    except ValueError:
        return kind


class FramePrefix(StrEnum):
    """A channel frame's type is `<prefix>/<channel>`: the first one is a snapshot, later ones are updates."""

    SUBSCRIBED = "subscribed"
    UPDATE = "update"


# Order statuses that mean "still on the book"; anything else in a delta (filled, canceled-*) removes the order.
ACTIVE_STATUSES = frozenset({"open", "pending", "in-progress"})
# The simulator marks its HTTP responses (and the WS upgrade) with this header set to "1".
SIMULATOR_HEADER = "X-Lighter-Simulator"
# Lighter's geo-blocked regions may still open the socket with this query (public channels only).
READONLY_QUERY = "?readonly=true"
ACCOUNT_PATH = "/api/v1/account"
ACTIVE_ORDERS_PATH = "/api/v1/accountActiveOrders"
