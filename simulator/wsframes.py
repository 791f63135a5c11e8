"""WebSocket frame payloads (pure). Channels are subscribed with '/' and echoed with ':'."""
from __future__ import annotations

from .accounts import Order, metrics
from .model import Fill, Model
from .views import order_json, position_json, trade_json, user_stats

ACCOUNT_CHANNELS = ("account_all", "user_stats", "account_all_orders", "account_all_positions",
                    "account_all_trades")
AUTH_CHANNELS = ("account_all_orders",)


def frame_channel(channel: str) -> str:
    return channel.replace("/", ":")


def account_all(model: Model, index: int, kind: str, fills: list[Fill], ts_ms: int) -> dict:
    """account_all snapshot/update: every listed position, plus the fills of this change."""
    acct = model.accounts[index]
    m = metrics(acct, model.marks)
    trades: dict[str, list[dict]] = {}
    for f in fills:
        trades.setdefault(str(f.market_id), []).append(trade_json(f))
    return {
        "type": f"{kind}/account_all", "channel": f"account_all:{index}", "account": index,
        "positions": {str(mid): position_json(p, acct, model, m) for mid, p in sorted(acct.positions.items())},
        "trades": trades, "funding_histories": {}, "liquidations": [], "shares": [], "timestamp": ts_ms,
    }


def account_all_positions(model: Model, index: int, kind: str, ts_ms: int) -> dict:
    """account_all_positions: the positions map of account_all (same rows) without trades."""
    acct = model.accounts[index]
    m = metrics(acct, model.marks)
    return {
        "type": f"{kind}/account_all_positions", "channel": f"account_all_positions:{index}",
        "positions": {str(mid): position_json(p, acct, model, m) for mid, p in sorted(acct.positions.items())},
        # Lighter's funding bookkeeping; the simulator charges no funding (types as seen in 3P fixtures).
        "shares": [], "last_funding_round": 0, "last_funding_discount": "0", "timestamp": ts_ms,
    }


def account_all_trades(model: Model, index: int, kind: str, fills: list[Fill], ts_ms: int) -> dict:
    """account_all_trades: the snapshot lists the recent fills, an update this change's; both carry the
    account's volume fields, JSON numbers in USD as Lighter sends them."""
    trades: dict[str, list[dict]] = {}
    for f in fills:
        trades.setdefault(str(f.market_id), []).append(trade_json(f))
    volumes = {key: float(value) for key, value in model.volumes(index, ts_ms).items()}
    return {"type": f"{kind}/account_all_trades", "channel": f"account_all_trades:{index}", "trades": trades,
            **volumes, "timestamp": ts_ms}


def user_stats_frame(model: Model, index: int, kind: str, ts_ms: int) -> dict:
    return {"type": f"{kind}/user_stats", "channel": f"user_stats:{index}",
            "stats": user_stats(model.accounts[index], model), "timestamp": ts_ms}


def account_all_orders(index: int, orders: list[Order], kind: str, ts_ms: int) -> dict:
    """Snapshot: all active orders. Update: only the orders that changed, terminal statuses included."""
    by_market: dict[str, list[dict]] = {}
    for o in orders:
        by_market.setdefault(str(o.market_id), []).append(order_json(o, index))
    return {"type": f"{kind}/account_all_orders", "channel": f"account_all_orders:{index}",
            "account": index, "orders": by_market, "timestamp": ts_ms}


def order_book(model: Model, market_id: int, kind: str, ts_ms: int, delta: dict | None = None) -> dict:
    """Snapshot carries every level; updates carry level deltas (size '0' removes a level)."""
    book = model.books[market_id]
    levels = book.levels() if delta is None else {"asks": delta["asks"], "bids": delta["bids"]}
    begin = book.nonce if delta is None else delta["begin_nonce"]
    payload = {"code": 0, **levels, "offset": book.offset, "nonce": book.nonce, "begin_nonce": begin,
               "last_updated_at": book.last_updated_us}
    return {"type": f"{kind}/order_book", "channel": f"order_book:{market_id}", "offset": book.offset,
            "last_updated_at": book.last_updated_us, "order_book": payload, "timestamp": ts_ms}


def snapshot(model: Model, channel: str, ts_ms: int) -> dict:
    """The `subscribed/<name>` frame for a validated channel in '/' form."""
    name, ident = channel.split("/", 1)
    i = int(ident)
    if name == "account_all":
        return account_all(model, i, "subscribed", [], ts_ms)
    if name == "user_stats":
        return user_stats_frame(model, i, "subscribed", ts_ms)
    if name == "account_all_orders":
        return account_all_orders(i, model.accounts[i].active_orders(), "subscribed", ts_ms)
    if name == "account_all_positions":
        return account_all_positions(model, i, "subscribed", ts_ms)
    if name == "account_all_trades":
        return account_all_trades(model, i, "subscribed", model.fills.get(i, []), ts_ms)
    return order_book(model, i, "subscribed", ts_ms)


def parse_channel(channel: object, model: Model) -> tuple[str, int] | None:
    """Validate a subscribe channel: returns (name, id) or None for an invalid channel.
    Unknown accounts are reported separately by the caller (21100)."""
    if not isinstance(channel, str) or channel.count("/") != 1:
        return None
    name, ident = channel.split("/")
    if not ident.isdigit():
        return None
    if name in ACCOUNT_CHANNELS:
        return name, int(ident)
    if name == "order_book" and int(ident) in model.books:
        return name, int(ident)
    return None
