"""`GET /api/v1/trades` for one account: every fill the simulator made, newest first, paged by an opaque cursor.

Lighter's shape (docs/lighter-protocol.md, "trades"): `{code, next_cursor?, trades:[Trade]}`, `limit` 1..100,
`sort_by` required, auth required for master accounts and sub-accounts (400/20001 without it).
The cursor is opaque to clients; here it is the trade id to continue below.
"""
from __future__ import annotations

from collections import deque

from . import views
from .markets import MARKETS_BY_ID, usdc
from .model import Changes, Fill

KEPT_PER_ACCOUNT = 10_000  # fills remembered per account (oldest dropped first)
MAX_LIMIT = 100
SORT_BY = ("block_height", "timestamp", "trade_id")


class TradeLog:
    """Every fill, per account, oldest first."""

    def __init__(self) -> None:
        self.by_account: dict[int, deque[Fill]] = {}

    def record(self, changes: Changes) -> None:
        for index, fills in changes.fills.items():
            self.by_account.setdefault(index, deque(maxlen=KEPT_PER_ACCOUNT)).extend(fills)

    def page(self, index: int, limit: int, below: int | None, ascending: bool) -> tuple[list[Fill], str]:
        fills = list(self.by_account.get(index, ()))
        if not ascending:
            fills.reverse()
        if below is not None:
            fills = [f for f in fills if (f.trade_id > below if ascending else f.trade_id < below)]
        page = fills[:limit]
        more = len(fills) > limit
        return page, str(page[-1].trade_id) if more and page else ""


# Fields the SDK's strict Trade model requires that the simulator does not model: neutral values.
_UNMODELLED: dict[str, object] = {
    **{f"{side}_{name}": value for side in ("taker", "maker") for name, value in (
        ("position_size_before", "0"), ("entry_quote_before", "0"), ("initial_margin_fraction_before", 0),
        ("position_sign_changed", False), ("allocated_margin_usdc_before", 0), ("allocated_margin_usdc_after", 0))},
    "integrator_maker_fee": 0, "integrator_maker_fee_collector_index": 0, "integrator_taker_fee": 0,
    "integrator_taker_fee_collector_index": 0, "bid_order_version": 0, "ask_order_version": 0,
}


def trade_row(fill: Fill) -> dict:
    """A Trade as `/api/v1/trades` returns it (passes the SDK's strict model): the WS shape plus the realized PnL of
    the queried account, client ids and the market's symbol."""
    row = {**views.trade_json(fill), **_UNMODELLED}
    pnl = usdc(fill.realized_pnl)
    row["ask_account_pnl"], row["bid_account_pnl"] = (pnl, "0.000000") if fill.is_ask else ("0.000000", pnl)
    for side in ("ask", "bid"):
        row[f"{side}_client_id"], row[f"{side}_client_id_str"] = 0, "0"
    row["market_symbol"], row["market_kind"] = MARKETS_BY_ID[fill.market_id].symbol, "perps"
    return row
