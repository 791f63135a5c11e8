"""Pure derivation of history rows from an account's consecutive snapshots (no I/O, no clock: `ts` is given).

Input: the previous and the current Snapshot of one account (store schema 1, Lighter's rows verbatim inside).
Output: plain dicts shaped like the tables in core/history/schema.py.

What is inferred, and how (docs/history.md):
- a fill's side, role, fee and realized PnL come from the Trade row and which side our account is on;
- position events come from the signed size (`sign` × `position`) per market between two snapshots;
- an order that leaves the active list is `filled` when its last seen remaining size was 0 or a known fill names
  it with that size, else `cancelled` (Lighter's active-orders data does not carry the terminal status for us);
- a funding payment is a change of a position's `total_funding_paid_out`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from core.snapshot import Row, Snapshot

ZERO = Decimal(0)


@dataclass
class Derived:
    """Rows for each table, from one step."""

    fills: list[Row] = field(default_factory=list)
    position_events: list[Row] = field(default_factory=list)
    order_events: list[Row] = field(default_factory=list)
    funding_payments: list[Row] = field(default_factory=list)

    def tables(self) -> dict[str, list[Row]]:
        return {"fills": self.fills, "position_events": self.position_events, "order_events": self.order_events,
                "funding_payments": self.funding_payments}


def decimal(value: Any) -> Decimal | None:
    """Lighter's decimal string (or an int) as a Decimal; None for anything else. Never through float."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    try:
        result = Decimal(value)
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def text(value: Decimal) -> str:
    """A Decimal as plain text without exponent ("0E-6" → "0.000000")."""
    return format(value, "f")


def _rows(snapshot: Snapshot | None, section: str) -> list[Row]:
    if snapshot is None:
        return []
    data = _data(snapshot, section)
    return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []


def _object(snapshot: Snapshot | None, section: str) -> Row:
    if snapshot is None:
        return {}
    data = _data(snapshot, section)
    return data if isinstance(data, dict) else {}


def _data(snapshot: Snapshot | None, section: str) -> Any:
    if snapshot is None:
        return None
    found = snapshot.get("sections", {}).get(section)
    return found.get("data") if found is not None else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- fills ------------------------------------------------------------------------------------------------------
def fill_row(account: int, trade: Row, source: str) -> Row | None:
    """One Lighter Trade as this account's fill, or None if the account is on neither side or ids are missing."""
    trade_id, ts = _int(trade.get("trade_id")), _int(trade.get("timestamp"))
    if trade_id is None or ts is None:
        return None
    if trade.get("ask_account_id") == account:
        is_ask = True
    elif trade.get("bid_account_id") == account:
        is_ask = False
    else:
        return None
    maker = bool(trade.get("is_maker_ask")) == is_ask
    fee = trade.get("maker_fee" if maker else "taker_fee")
    pnl = trade.get("ask_account_pnl" if is_ask else "bid_account_pnl")
    return {
        "account_index": account, "trade_id": trade_id, "ts": ts, "market_id": _int(trade.get("market_id")) or 0,
        "side": "sell" if is_ask else "buy", "role": "maker" if maker else "taker",
        "price": str(trade.get("price", "")), "size": str(trade.get("size", "")),
        "fee": None if fee is None else str(fee), "realized_pnl": pnl if isinstance(pnl, str) else None,
        "order_index": _int(trade.get("ask_id" if is_ask else "bid_id")),
        "type": str(trade.get("type") or "trade"), "source": source,
    }


def new_fills(account: int, previous: Snapshot | None, current: Snapshot, source: str = "ws") -> list[Row]:
    """Trades in `current` that `previous` did not hold (the store deduplicates again by trade id)."""
    seen = {t.get("trade_id") for t in _rows(previous, "trades")}
    rows = [fill_row(account, t, source) for t in _rows(current, "trades") if t.get("trade_id") not in seen]
    return sorted((r for r in rows if r is not None), key=lambda r: (r["ts"], r["trade_id"]))


# -- positions --------------------------------------------------------------------------------------------------
def signed_size(position: Row) -> Decimal | None:
    size = decimal(position.get("position"))
    if size is None:
        return None
    return -size if position.get("sign") == -1 else size


def position_kind(before: Decimal, after: Decimal) -> str | None:
    """open | increase | reduce | close | flip, or None when the size did not move."""
    if before == after:
        return None
    if before == 0:
        return "open"
    if after == 0:
        return "close"
    if (before > 0) != (after > 0):
        return "flip"
    return "increase" if abs(after) > abs(before) else "reduce"


def _positions(snapshot: Snapshot | None) -> dict[int, Row]:
    return {p["market_id"]: p for p in _rows(snapshot, "positions") if _int(p.get("market_id")) is not None}


def position_events(account: int, previous: Snapshot | None, current: Snapshot, ts: int) -> list[Row]:
    """Size changes per market."""
    if _data(previous, "positions") is None or _data(current, "positions") is None:
        return []  # no data on one side (first run, not fetched yet): nothing is known to have moved
    before, after = _positions(previous), _positions(current)
    events: list[Row] = []
    for market in sorted(set(before) | set(after)):
        old = signed_size(before[market]) if market in before else ZERO
        new = signed_size(after[market]) if market in after else ZERO
        if old is None or new is None:
            continue
        kind = position_kind(old, new)
        if kind is None:
            continue
        row = after.get(market) or before[market]
        events.append({"account_index": account, "market_id": market, "ts": ts, "kind": kind,
                       "size_before": text(old), "size_after": text(new),
                       "avg_entry_price": row.get("avg_entry_price") if new != 0 else None,
                       "realized_pnl": row.get("realized_pnl") if isinstance(row.get("realized_pnl"), str)
                       else None})
    return events


# -- orders -----------------------------------------------------------------------------------------------------
def _orders(snapshot: Snapshot | None) -> dict[int, Row]:
    return {o["order_index"]: o for o in _rows(snapshot, "orders") if _int(o.get("order_index")) is not None}


def _order_row(account: int, order: Row, ts: int, kind: str, status: str) -> Row:
    # Upstream's own times where they say when it happened; a vanished order's end is when we saw it go.
    stamp = {"placed": "created_at", "partly_filled": "updated_at"}.get(kind)
    when = (_int(order.get(stamp)) if stamp else None) or ts
    return {"account_index": account, "order_index": order["order_index"],
            "market_id": _int(order.get("market_index")) or 0, "ts": when, "kind": kind, "status": status,
            "side": "sell" if order.get("is_ask") else "buy", "price": order.get("price"),
            "initial_size": order.get("initial_base_amount"),
            "remaining": "0" if kind == "filled" else order.get("remaining_base_amount")}


def order_events(account: int, previous: Snapshot | None, current: Snapshot, ts: int,
                 fills: Iterable[Row] = ()) -> list[Row]:
    """Placed, partly filled, filled and cancelled, from the active-orders section of two snapshots.
    `fills` are fills known for this step (an order that leaves the book with them is `filled`)."""
    if _data(current, "orders") is None:
        return []  # no order data (public-only account, or not fetched yet)
    before, after = _orders(previous), _orders(current)
    filled_size: dict[int, Decimal] = {}
    for fill in fills:
        order_index, size = fill.get("order_index"), decimal(fill.get("size"))
        if isinstance(order_index, int) and size is not None:
            filled_size[order_index] = filled_size.get(order_index, ZERO) + size
    events: list[Row] = []
    for index, order in after.items():
        status = str(order.get("status", ""))
        old = before.get(index)
        if old is None:
            events.append(_order_row(account, order, ts, "placed", status))
        remaining = decimal(order.get("remaining_base_amount"))
        was = decimal(old.get("remaining_base_amount")) if old else decimal(order.get("initial_base_amount"))
        if remaining is not None and was is not None and remaining < was:
            events.append(_order_row(account, order, ts, "partly_filled", status))
    if _data(previous, "orders") is not None:
        for index, order in before.items():
            if index in after:
                continue
            remaining = decimal(order.get("remaining_base_amount"))
            done = remaining == 0 or (remaining is not None and filled_size.get(index, ZERO) >= remaining)
            kind, status = ("filled", "filled") if done else ("cancelled", "canceled")
            events.append(_order_row(account, order, ts, kind, status))
    return events


# -- funding ----------------------------------------------------------------------------------------------------
def funding_payments(account: int, previous: Snapshot | None, current: Snapshot, ts: int) -> list[Row]:
    """A change of a position's cumulative `total_funding_paid_out` is one funding payment."""
    if previous is None:
        return []
    before = _positions(previous)
    rows: list[Row] = []
    for market, position in _positions(current).items():
        now = decimal(position.get("total_funding_paid_out"))
        was = decimal(before[market].get("total_funding_paid_out")) if market in before else None
        if now is None or was is None or now == was:
            continue
        rows.append({"account_index": account, "market_id": market, "ts": ts, "amount": text(now - was),
                     "total_paid_out": position["total_funding_paid_out"]})
    return rows


def derive(account: int, previous: Snapshot | None, current: Snapshot, ts: int) -> Derived:
    """Everything one snapshot step says happened."""
    fills = new_fills(account, previous, current)
    return Derived(fills=fills, position_events=position_events(account, previous, current, ts),
                   order_events=order_events(account, previous, current, ts, fills),
                   funding_payments=funding_payments(account, previous, current, ts))


# -- equity -----------------------------------------------------------------------------------------------------
def equity_sample(account: int, snapshot: Snapshot, ts: int) -> Row | None:
    """Equity (total asset value), collateral, unrealized PnL (sum over positions), margin usage and leverage.
    None while the account has no equity figure yet."""
    summary, stats = _object(snapshot, "summary"), _object(snapshot, "stats")
    equity_text = summary.get("total_asset_value") or stats.get("portfolio_value")
    equity = decimal(equity_text)
    if equity is None:
        return None
    upnl = ZERO
    for position in _rows(snapshot, "positions"):
        upnl += decimal(position.get("unrealized_pnl")) or ZERO
    collateral = summary.get("collateral") or stats.get("collateral")
    return {"account_index": account, "ts": ts, "equity": str(equity_text), "equity_f": float(equity),
            "collateral": collateral if isinstance(collateral, str) else None, "upnl": text(upnl),
            "margin_usage": _str_or_none(stats.get("margin_usage")), "leverage": _str_or_none(stats.get("leverage"))}


def portfolio_sample(samples: Iterable[Row], account: int, ts: int) -> Row | None:
    """The sum of the latest sample of every account, stored under `account` (schema.PORTFOLIO)."""
    rows = list(samples)
    if not rows:
        return None
    total = sum((decimal(r["equity"]) or ZERO for r in rows), ZERO)
    collateral = sum((decimal(r.get("collateral")) or ZERO for r in rows), ZERO)
    upnl = sum((decimal(r.get("upnl")) or ZERO for r in rows), ZERO)
    return {"account_index": account, "ts": ts, "equity": text(total), "equity_f": float(total),
            "collateral": text(collateral), "upnl": text(upnl), "margin_usage": None, "leverage": None}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
