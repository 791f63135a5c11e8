"""Pure parsers for Lighter REST bodies and WebSocket frames: validate, keep values verbatim, never guess."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from lighter.models.detailed_accounts import DetailedAccounts
from lighter.models.orders import Orders
from pydantic import BaseModel, ValidationError

from core.snapshot import Row
from worker.protocol import Channel, Control, FramePrefix, channel_named, control_named

# Money and sizes are decimal strings upstream; we relay them verbatim and insist they stay strings.
_SUMMARY_STRINGS = ("collateral", "available_balance", "total_asset_value")
_POSITION_INTS = ("market_id", "sign")
_POSITION_STRINGS = ("position", "avg_entry_price")
_ORDER_INTS = ("order_index", "market_index")
_ORDER_STRINGS = ("status", "price", "remaining_base_amount")
_STATS_STRINGS = ("collateral", "portfolio_value", "available_balance")
VOLUME_FIELDS = ("daily_volume", "weekly_volume", "monthly_volume", "total_volume")


class ParseError(ValueError):
    """The payload is unusable: the caller keeps its last good data and flags the section."""


@dataclass(frozen=True)
class ParsedAccount:
    """One DetailedAccount: summary fields (everything but positions) and the positions list."""

    summary: Row
    positions: list[Row]
    strict: bool


@dataclass(frozen=True)
class ParsedOrders:
    orders: list[Row]
    strict: bool


@dataclass(frozen=True)
class AccountAllData:
    """An account_all frame: the full positions list (None if the frame had none) and this change's trades."""

    positions: list[Row] | None
    trades: list[Row]


@dataclass(frozen=True)
class UserStatsData:
    stats: Row


@dataclass(frozen=True)
class OrdersData:
    """An account_all_orders frame: every active order (snapshot) or only the changed ones (update)."""

    orders: list[Row]


@dataclass(frozen=True)
class TradesData:
    """An account_all_trades frame: this change's trades (all recent ones in a snapshot) and the volume fields
    the frame carried (kept verbatim; Lighter sends them as JSON numbers)."""

    trades: list[Row]
    volume: Row | None


ChannelData = AccountAllData | UserStatsData | OrdersData | TradesData


@dataclass
class Frame:
    """A classified WebSocket frame. `kind` is a Channel, a Control type, or another type we ignore."""

    kind: Channel | Control | str
    snapshot: bool = False           # `subscribed/...` (the channel's full state) rather than `update/...`
    account: int | None = None       # account channels always have one
    data: ChannelData | None = None  # account channels: the validated rows
    payload: Row = field(default_factory=dict)  # other frames: the frame (error frames: code, message, channel)
    error: str | None = None         # an account frame whose rows failed validation: nothing to merge

    @property
    def channel(self) -> Channel | None:
        return self.kind if isinstance(self.kind, Channel) else None


def _loads(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ParseError("malformed JSON") from None


def _check_code(body: object, where: str) -> None:
    if not isinstance(body, dict):
        raise ParseError(f"{where}: body is not an object")
    code = body.get("code", 200)
    if code not in (0, 200):
        raise ParseError(f"{where}: code {code} {str(body.get('message', ''))[:120]}")


def _require(obj: object, ints: tuple[str, ...], strings: tuple[str, ...], where: str) -> Row:
    """`obj` itself, once it is an object whose `ints` are integers and `strings` are strings."""
    if not isinstance(obj, dict):
        raise ParseError(f"{where}: expected an object")
    for key in ints:
        value = obj.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ParseError(f"{where}: {key} must be an integer")
    for key in strings:
        if not isinstance(obj.get(key), str):
            raise ParseError(f"{where}: {key} must be a string")
    return obj


def _load_checked(raw: bytes | str, model: type[BaseModel], where: str) -> tuple[Row, bool]:
    """The decoded body (its `code` checked) and whether it passes the SDK's strict validation. Failing that is
    not an error: live bodies carry extra or missing optional-in-practice fields; callers check what we serve."""
    body = _loads(raw)
    _check_code(body, where)
    try:
        model.model_validate_json(raw)
    except ValidationError:
        return body, False
    return body, True


def parse_account(raw: bytes | str, account_index: int) -> ParsedAccount:
    """A `/api/v1/account?by=index` body. Strict SDK validation first; live-like leniencies are tolerated
    as long as the fields we serve are present and well-typed."""
    body, strict = _load_checked(raw, DetailedAccounts, "account")
    accounts = body.get("accounts")
    if not isinstance(accounts, list):
        raise ParseError("account: accounts missing")
    match = [a for a in accounts if isinstance(a, dict)
             and account_index in (a.get("account_index"), a.get("index"))]
    if not match:
        raise ParseError(f"account: {account_index} not in response")
    account = match[0]
    _require(account, (), _SUMMARY_STRINGS, "account")
    positions = account.get("positions")
    if not isinstance(positions, list):
        raise ParseError("account: positions must be a list")
    for row in positions:
        _require(row, _POSITION_INTS, _POSITION_STRINGS, "account.positions")
    summary = {k: v for k, v in account.items() if k != "positions"}
    return ParsedAccount(summary, sort_positions(positions), strict)


def parse_orders(raw: bytes | str) -> ParsedOrders:
    """An `accountActiveOrders` body. A body without `orders` is an error, never "no orders"."""
    body, strict = _load_checked(raw, Orders, "orders")
    orders = body.get("orders")
    if not isinstance(orders, list):
        raise ParseError("orders: orders missing")
    for order in orders:
        _require(order, _ORDER_INTS, _ORDER_STRINGS, "orders[]")
    return ParsedOrders(sort_orders(orders), strict)


def sort_positions(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: row["market_id"])


def sort_orders(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: (row["market_index"], row["order_index"]))


def _rows(value: object, where: str) -> list[object]:
    """Lighter sends per-market maps in some frames and arrays in others: accept both."""
    if value is None:
        return []
    if isinstance(value, dict):
        rows: list[object] = []
        for item in value.values():
            rows.extend(item if isinstance(item, list) else [item])
        return rows
    if isinstance(value, list):
        return list(value)
    raise ParseError(f"{where}: expected a map or a list")


def _frame_account(msg: Row) -> int | None:
    channel = msg.get("channel")
    if isinstance(channel, str) and ":" in channel:
        ident = channel.split(":")[-1]
        if ident.isdigit():
            return int(ident)
    account = msg.get("account")
    return account if isinstance(account, int) else None


def parse_frame(raw: bytes | str) -> Frame:
    """Classify one WS frame; account frames get their rows validated and normalised to lists."""
    msg = _loads(raw)
    if not isinstance(msg, dict):
        raise ParseError("frame is not an object")
    if "error" in msg:
        error = msg["error"] if isinstance(msg["error"], dict) else {"message": str(msg["error"])}
        return Frame(Control.ERROR, payload={"code": error.get("code"), "message": str(error.get("message", ""))[:200],
                                             "channel": msg.get("channel")})
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise ParseError("frame without type")
    if "/" not in kind:
        return Frame(control_named(kind), payload=msg)  # connected, ping, pong, shutdown, unsubscribed...
    prefix, name = kind.split("/", 1)
    channel = channel_named(name)
    if channel is None:
        return Frame(name, snapshot=prefix == FramePrefix.SUBSCRIBED, payload=msg)  # order_book...: not ours
    frame = Frame(channel, snapshot=prefix == FramePrefix.SUBSCRIBED, account=_frame_account(msg))
    if frame.account is None:
        raise ParseError(f"{kind}: no account in channel")
    try:
        frame.data = _DATA[channel](msg)
    except ParseError as exc:
        frame.error = str(exc)
    return frame


def _account_all(msg: Row) -> AccountAllData:
    positions = [_require(row, _POSITION_INTS, _POSITION_STRINGS, "account_all.positions")
                 for row in _rows(msg.get("positions"), "account_all.positions")]
    trades = [t for t in _rows(msg.get("trades"), "account_all.trades") if isinstance(t, dict)]
    return AccountAllData(sort_positions(positions) if "positions" in msg else None, trades)


def _user_stats(msg: Row) -> UserStatsData:
    return UserStatsData(_require(msg.get("stats"), (), _STATS_STRINGS, "user_stats.stats"))


def _account_all_orders(msg: Row) -> OrdersData:
    return OrdersData([_require(order, _ORDER_INTS, _ORDER_STRINGS, "account_all_orders.orders")
                       for order in _rows(msg.get("orders"), "account_all_orders.orders")])


def _account_all_trades(msg: Row) -> TradesData:
    trades = [t for t in _rows(msg.get("trades"), "account_all_trades.trades") if isinstance(t, dict)]
    volume: Row = {}
    for key in VOLUME_FIELDS:
        value = msg.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ParseError(f"account_all_trades: {key} must be a number")
        volume[key] = value
    return TradesData(trades, volume or None)


_DATA: dict[Channel, Callable[[Row], ChannelData]] = {
    Channel.ACCOUNT_ALL: _account_all, Channel.USER_STATS: _user_stats, Channel.ACCOUNT_ALL_ORDERS: _account_all_orders,
    Channel.ACCOUNT_ALL_TRADES: _account_all_trades}
