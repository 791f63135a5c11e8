"""Pure builders: store snapshots -> Lighter `/stream` frames (connected, pong, errors, account channels).

Channels served: `account_all/{i}`, `user_stats/{i}`, `account_all_orders/{i}` (clients subscribe with `/`; every
frame names the channel with `:`, as Lighter does). A `subscribed/<name>` frame is a full state; `update/<name>`
frames are built from the previous and the new snapshot of the account (see docs/lighter-compat.md for semantics).
"""
from __future__ import annotations

import re
from typing import Any

from app.compat.errors import LighterError
from app.compat.shapes import active_orders, position_rows, section_data
from core.snapshot import Snapshot

CHANNELS = ("account_all", "user_stats", "account_all_orders")
_CHANNEL = re.compile(r"^([a-z_]+)[/:]([0-9]{1,19})$")

def connected(session_id: str) -> dict[str, Any]:
    return {"type": "connected", "session_id": session_id}


def pong() -> dict[str, Any]:
    return {"type": "pong"}


def ping() -> dict[str, Any]:
    return {"type": "ping"}


def error(err: LighterError) -> dict[str, Any]:
    """Lighter's nested error frame; clients also accept it without `type`, but the SDK logs unknown types."""
    return {"type": "error", "error": {"code": err.code, "message": err.message}}


def unsubscribed(name: str, account: int) -> dict[str, Any]:
    return {"type": "unsubscribed", "channel": f"{name}:{account}"}


def parse_channel(text: Any) -> tuple[str, int] | None:
    """`account_all/123` (or `account_all:123`) -> ("account_all", 123); None for anything we do not serve."""
    if not isinstance(text, str):
        return None
    match = _CHANNEL.match(text)
    if match is None or match.group(1) not in CHANNELS:
        return None
    account = int(match.group(2))
    return (match.group(1), account) if account < 2**63 else None


def build(name: str, kind: str, snapshot: Snapshot, prev: Snapshot | None = None) -> dict[str, Any] | None:
    """The `kind` ("subscribed"|"update") frame of channel `name` for `snapshot`; None when there is nothing to say.

    For updates, `prev` is the account's previous snapshot (None: unknown, so the update carries the full state).
    """
    if name == "account_all":
        return account_all(kind, snapshot, prev)
    if name == "user_stats":
        return user_stats(kind, snapshot, prev)
    if name == "account_all_orders":
        return account_all_orders(kind, snapshot, prev)
    raise ValueError(f"unknown channel {name!r}")


def _timestamp(snapshot: Snapshot, *sections: str) -> int:
    """Frame `timestamp` (ms): when upstream last confirmed these sections, so one change encodes identically."""
    held = snapshot.get("sections") or {}
    found = [section.get("as_of") if (section := held.get(s)) else None for s in sections]
    stamps = [s for s in found if isinstance(s, int)]
    return max(stamps) if stamps else int(snapshot.get("as_of") or snapshot.get("written_at") or 0)


def _trades(snapshot: Snapshot | None) -> list[dict[str, Any]]:
    """The snapshot's recent trades as a flat list (the section may hold a list or a map by market)."""
    data = section_data(snapshot, "trades") if snapshot else None
    if isinstance(data, dict):
        data = [t for rows in data.values() if isinstance(rows, list) for t in rows]
    return [t for t in (data or []) if isinstance(t, dict)]


def _by_market(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(str(row.get(key)), []).append(row)
    return grouped


def _zeroed(position: dict[str, Any]) -> dict[str, Any]:
    """A position that vanished from the account: Lighter lists flat markets with size 0, so say exactly that."""
    return {**position, "position": "0", "position_value": "0", "unrealized_pnl": "0", "open_order_count": 0,
            "pending_order_count": 0, "position_tied_order_count": 0}


def account_all(kind: str, snapshot: Snapshot, prev: Snapshot | None) -> dict[str, Any] | None:
    """`account_all` frame: every position (map by market id), trades (new ones only in updates), pool shares.

    Updates carry the full position map (the SDK replaces its state with each frame) plus zeroed rows for markets
    that disappeared, so merging clients see them go flat too. No update when nothing in the frame changed.
    """
    index = int(snapshot["account_index"])
    positions = {str(p["market_id"]): p for p in position_rows(snapshot)}
    trades = _trades(snapshot)
    summary = section_data(snapshot, "summary")
    shares = summary.get("shares") if isinstance(summary, dict) and isinstance(summary.get("shares"), list) else []
    if kind == "update" and prev is not None:
        before = {str(p["market_id"]): p for p in position_rows(prev)}
        for market, row in before.items():
            positions.setdefault(market, _zeroed(row))
        seen = {t.get("trade_id") for t in _trades(prev)}
        trades = [t for t in trades if t.get("trade_id") not in seen]
        prev_summary = section_data(prev, "summary")
        prev_shares = prev_summary.get("shares") if isinstance(prev_summary, dict) else None
        if positions == before and not trades and shares == (prev_shares or []):
            return None
    return {"type": f"{kind}/account_all", "channel": f"account_all:{index}", "account": index,
            "positions": positions, "trades": _by_market(trades, "market_id"), "funding_histories": {},
            "liquidations": [], "shares": shares, "timestamp": _timestamp(snapshot, "positions", "trades")}


def stats_payload(snapshot: Snapshot) -> dict[str, Any] | None:
    """user_stats `stats`: verbatim when the worker has them, else the fields a REST summary maps to exactly.

    Only exact mappings are synthesized (portfolio_value = total_asset_value, §7); leverage, margin usage and buying
    power are left out rather than guessed.
    """
    stats = section_data(snapshot, "stats")
    if isinstance(stats, dict):
        return stats
    summary = section_data(snapshot, "summary")
    if not isinstance(summary, dict):
        return None
    derived = {"collateral": summary.get("collateral"), "portfolio_value": summary.get("total_asset_value"),
               "available_balance": summary.get("available_balance"),
               "account_trading_mode": summary.get("account_trading_mode")}
    return {k: v for k, v in derived.items() if v is not None} or None


def user_stats(kind: str, snapshot: Snapshot, prev: Snapshot | None) -> dict[str, Any] | None:
    """`user_stats` frame: the whole stats object each time (Lighter's own updates are whole objects)."""
    stats = stats_payload(snapshot)
    if stats is None or (kind == "update" and prev is not None and stats == stats_payload(prev)):
        return None
    index = int(snapshot["account_index"])
    return {"type": f"{kind}/user_stats", "channel": f"user_stats:{index}", "stats": stats,
            "timestamp": _timestamp(snapshot, "stats", "summary")}


def _zero_like(amount: Any) -> str:
    """"0" with the decimals of `amount` ("0.0030" -> "0.0000"): Lighter's strings carry market precision."""
    text = str(amount)
    return "0." + "0" * len(text.split(".", 1)[1]) if "." in text else "0"


def _closed(order: dict[str, Any], trades: list[dict[str, Any]], when: int) -> dict[str, Any]:
    """An order that left the active set. The store keeps active orders only, so the terminal status is inferred:
    `filled` when a recent trade of ours names it (ask_id/bid_id), otherwise `canceled`."""
    index = order.get("order_index")
    filled = any(index in (t.get("ask_id"), t.get("bid_id")) for t in trades)
    out = {**order, "status": "filled" if filled else "canceled", "updated_at": max(when, order.get("updated_at", 0))}
    if filled:
        out["remaining_base_amount"] = _zero_like(order.get("remaining_base_amount", "0"))
        out["filled_base_amount"] = order.get("initial_base_amount", out.get("filled_base_amount"))
    return out


def orders_delta(snapshot: Snapshot, prev: Snapshot | None) -> list[dict[str, Any]] | None:
    """Orders that are new or changed since `prev`, plus those that left the active set (terminal status)."""
    current = active_orders(snapshot)
    if current is None:
        return None
    before = active_orders(prev) if prev is not None else None
    if before is None:
        return current
    old = {o.get("order_index"): o for o in before}
    now = {o.get("order_index"): o for o in current}
    changed = [o for key, o in now.items() if old.get(key) != o]
    when = _timestamp(snapshot, "orders")
    trades = _trades(snapshot)
    return changed + [_closed(o, trades, when) for key, o in old.items() if key not in now]


def account_all_orders(kind: str, snapshot: Snapshot, prev: Snapshot | None) -> dict[str, Any] | None:
    """`account_all_orders` frame: `subscribed` has every active order; `update` only what changed (upsert by
    `order_index`; a non-`open` status means the order is gone). None when orders are unknown or unchanged."""
    orders = active_orders(snapshot) if kind == "subscribed" else orders_delta(snapshot, prev)
    if orders is None or (kind == "update" and not orders):
        return None
    index = int(snapshot["account_index"])
    return {"type": f"{kind}/account_all_orders", "channel": f"account_all_orders:{index}", "account": index,
            "orders": _by_market(orders, "market_index"), "timestamp": _timestamp(snapshot, "orders")}

