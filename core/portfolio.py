"""The trader's view of the book, pure: per position, per account and in total, with exact decimals.

Inputs are the snapshots as served (`AccountBody`: Lighter's strings kept verbatim plus freshness); outputs are
plain dicts of decimal strings (like Lighter's own), ready to encode. No I/O, no clock: `now` and the names are
passed in. Which Lighter field each figure comes from is documented in docs/api.md ("Portfolio").

Rules:
- Money is summed as `Decimal`, never float, and served as a string with the exponent it naturally has.
- Ratios (margin usage %, leverage, liquidation distance %) are rounded half-even to RATIO_PLACES decimals,
  margins (notional × initial margin fraction) to USDC_PLACES like Lighter's USDC amounts.
- Unknown is None, never 0: a figure whose input is missing is None, and a total over an account where it is
  None is None too (a partial sum would understate the book).
- Freshness propagates: the total is stale when any account is, and its age is the oldest account's age.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from core.snapshot import AccountBody, Row

RATIO_PLACES = 2
_RATIO_QUANTUM = Decimal(1).scaleb(-RATIO_PLACES)
# Lighter quotes USDC amounts with 6 decimals: a product (margin = notional × IMF) is rounded to that.
USDC_PLACES = 6
_USDC_QUANTUM = Decimal(1).scaleb(-USDC_PLACES)
_HUNDRED = Decimal(100)
# account_all_trades volume fields (numbers upstream) and the names we serve them under.
VOLUME_FIELDS = {"daily_volume": "volume_24h", "weekly_volume": "volume_7d", "monthly_volume": "volume_30d",
                 "total_volume": "volume_total"}
# The money figures summed across accounts (ratios are recomputed from sums, never added).
SUMMED = ("equity", "collateral", "available_balance", "unrealized_pnl", "realized_pnl", "margin_used",
          "notional", *VOLUME_FIELDS.values())


@dataclass(frozen=True)
class Label:
    """How the configuration names an account: `Lighter_{group}_{name}_*`."""

    name: str | None
    group: int | None


def dec(value: Any) -> Decimal | None:
    """A finite Decimal from Lighter's decimal string (or a JSON number, as volumes are), else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        # str() of a float is its shortest repr: the number as sent, not its binary expansion.
        number = Decimal(value if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def text(value: Decimal | None) -> str | None:
    """A Decimal as served: plain notation, never "-0"."""
    if value is None:
        return None
    if value.is_zero():
        value = abs(value)
    return format(value, "f")


def ratio(numerator: Decimal | None, denominator: Decimal | None, scale: Decimal = Decimal(1)) -> Decimal | None:
    """numerator / denominator × scale, rounded to RATIO_PLACES; None when undefined (denominator ≤ 0)."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return (numerator * scale / denominator).quantize(_RATIO_QUANTUM, rounding=ROUND_HALF_EVEN)


def places(value: Any) -> int | None:
    """Decimals in one of Lighter's strings: the market's precision ("2350.10" → 2)."""
    number = dec(value)
    if number is None or not isinstance(value, str):
        return None
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def position(row: Row) -> dict[str, Any] | None:
    """One AccountPosition as the trader reads it; None for a flat row (Lighter lists markets with size 0)."""
    size = dec(row.get("position"))
    if size is None or size.is_zero():
        return None
    sign = row.get("sign")
    side = "short" if sign == -1 else "long"
    notional = dec(row.get("position_value"))
    notional = abs(notional) if notional is not None else None
    # position_value is the size valued at the mark price, so the mark is their quotient.
    mark = notional / size if notional is not None else None
    liquidation = dec(row.get("liquidation_price"))
    if liquidation is not None and liquidation <= 0:
        liquidation = None  # Lighter sends "0" when there is no liquidation price
    distance = None
    if liquidation is not None and mark is not None and mark > 0:
        gap = mark - liquidation if side == "long" else liquidation - mark
        distance = ratio(gap, mark, _HUNDRED)
    imf = dec(row.get("initial_margin_fraction"))
    margin = None
    if notional is not None and imf is not None:
        margin = (notional * imf / _HUNDRED).quantize(_USDC_QUANTUM, rounding=ROUND_HALF_EVEN)
    price_places = places(row.get("avg_entry_price"))
    if mark is not None and price_places is not None:
        mark = mark.quantize(Decimal(1).scaleb(-price_places), rounding=ROUND_HALF_EVEN)
    return {
        "market_id": row.get("market_id"), "symbol": row.get("symbol"), "side": side,
        "size": text(size), "notional": text(notional), "mark_price": text(mark),
        "entry_price": text(dec(row.get("avg_entry_price"))),
        "liquidation_price": text(liquidation), "liquidation_distance_pct": text(distance),
        "unrealized_pnl": text(dec(row.get("unrealized_pnl"))), "realized_pnl": text(dec(row.get("realized_pnl"))),
        "margin_used": text(margin), "size_decimals": places(row.get("position")), "price_decimals": price_places,
    }


def _data(body: AccountBody, name: str) -> Any:
    section = body.get("sections", {}).get(name)
    return None if section is None else section.get("data")


def _rows(body: AccountBody, name: str) -> list[Row] | None:
    data = _data(body, name)
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else None


def _sum(values: Iterable[Decimal | None]) -> Decimal | None:
    """Exact sum; None if any term is unknown."""
    total = Decimal(0)
    for value in values:
        if value is None:
            return None
        total += value
    return total


def _worst(distances: Iterable[str | None]) -> str | None:
    known = [Decimal(d) for d in distances if d is not None]
    return text(min(known)) if known else None


def account(body: AccountBody, label: Label) -> dict[str, Any]:
    """One account's figures from its served snapshot (summary, positions, orders, trades, volume sections)."""
    summary = _data(body, "summary")
    summary = summary if isinstance(summary, dict) else {}
    rows = _rows(body, "positions")
    positions = [p for p in (position(r) for r in rows or []) if p is not None]
    volume = _data(body, "volume")
    volume = volume if isinstance(volume, dict) else {}
    equity = dec(summary.get("total_asset_value"))
    # Sums over positions are unknown until positions are known ([] is "no positions": zero).
    known = rows is not None
    upnl = _sum(dec(p["unrealized_pnl"]) for p in positions) if known else None
    rpnl = _sum(dec(r.get("realized_pnl")) for r in rows or []) if known else None
    notional = _sum(dec(p["notional"]) for p in positions) if known else None
    margin = _sum(dec(p["margin_used"]) for p in positions) if known else None
    orders = None if body.get("public_only") else _rows(body, "orders")
    trades = _rows(body, "trades")
    figures: dict[str, Any] = {
        "account_index": body["account_index"], "name": label.name, "group": label.group,
        "stale": body["stale"], "age_ms": body["age_ms"], "as_of": body.get("as_of"), "seq": body.get("seq"),
        "equity": text(equity), "collateral": text(dec(summary.get("collateral"))),
        "available_balance": text(dec(summary.get("available_balance"))),
        "unrealized_pnl": text(upnl), "realized_pnl": text(rpnl), "notional": text(notional),
        "margin_used": text(margin), "margin_usage_pct": text(ratio(margin, equity, _HUNDRED)),
        "leverage": text(ratio(notional, equity)),
        **{ours: text(dec(volume.get(theirs))) for theirs, ours in VOLUME_FIELDS.items()},
        "worst_liquidation_distance_pct": _worst(p["liquidation_distance_pct"] for p in positions),
        "position_count": len(positions) if known else None,
        "active_order_count": None if orders is None else len(orders),
        "trade_count": None if trades is None else len(trades),
        "positions": positions,
    }
    return figures


def total(accounts: list[dict[str, Any]]) -> dict[str, Any]:
    """The book across accounts: exact sums, ratios recomputed from the sums, freshness of the oldest input."""
    sums = {key: text(_sum(dec(a[key]) if a[key] is not None else None for a in accounts)) if accounts else None
            for key in SUMMED}
    ages = [a["age_ms"] for a in accounts]
    stale = [a["account_index"] for a in accounts if a["stale"]]

    def counted(key: str) -> int | None:
        values = [a[key] for a in accounts]
        return None if not values or any(v is None for v in values) else sum(values)

    return {
        **sums,
        "margin_usage_pct": text(ratio(dec(sums["margin_used"]), dec(sums["equity"]), _HUNDRED)),
        "leverage": text(ratio(dec(sums["notional"]), dec(sums["equity"]))),
        "worst_liquidation_distance_pct": _worst(a["worst_liquidation_distance_pct"] for a in accounts),
        "position_count": counted("position_count"), "active_order_count": counted("active_order_count"),
        "trade_count": counted("trade_count"),
        "accounts": len(accounts), "stale": bool(stale) or not accounts, "stale_accounts": stale,
        # The oldest input's age: unknown if any account has never been confirmed.
        "age_ms": None if not ages or any(a is None for a in ages) else max(ages),
    }


def portfolio(bodies: list[AccountBody], labels: Mapping[int, Label], now: int) -> dict[str, Any]:
    """The /api/portfolio body: accounts in the order given (configuration order) and their total."""
    accounts = [account(b, labels.get(b["account_index"], Label(None, None))) for b in bodies]
    return {"server_time": now, "total": total(accounts), "accounts": accounts}


def fills(bodies: list[AccountBody], labels: Mapping[int, Label], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` fills across accounts, newest first, each with its account and side for that account."""
    out: list[dict[str, Any]] = []
    for body in bodies:
        index = body["account_index"]
        label = labels.get(index, Label(None, None))
        for trade in _rows(body, "trades") or []:
            if trade.get("ask_account_id") == index:
                side = "sell"
            elif trade.get("bid_account_id") == index:
                side = "buy"
            else:
                side = None
            out.append({"account_index": index, "name": label.name, "market_id": trade.get("market_id"),
                        "side": side, "size": trade.get("size"), "price": trade.get("price"),
                        "usd_amount": trade.get("usd_amount"), "timestamp": trade.get("timestamp"),
                        "trade_id": trade.get("trade_id_str") or str(trade.get("trade_id"))})
    out.sort(key=fill_order, reverse=True)
    return out[:limit]


def fill_order(fill: dict[str, Any]) -> tuple[int, str]:
    """Newest last: by timestamp, then trade id (as text, the same for every account's copy of one trade)."""
    return fill["timestamp"] or 0, fill["trade_id"] or ""
