"""Account, position and order state plus the fill arithmetic (pure, no I/O, no clocks)."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .markets import MARKETS_BY_ID, MarketSpec

ZERO = Decimal(0)
# Exchange order indexes are >= 2^48 and client order indexes below it (protocol doc §7).
ORDER_INDEX_BASE = 2**48


@dataclass
class Position:
    """A signed perp position; `size` > 0 is long, < 0 short, 0 flat (still listed, as live does)."""

    market_id: int
    size: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    funding_paid: Decimal = ZERO

    def unrealized(self, mark: Decimal) -> Decimal:
        return self.size * (mark - self.avg_entry)


@dataclass
class Order:
    """A resting limit order. Terminal orders are kept only long enough to be pushed once."""

    order_index: int
    client_order_index: int
    market_id: int
    is_ask: bool
    price: Decimal
    initial: Decimal
    filled: Decimal = ZERO
    filled_quote: Decimal = ZERO
    status: str = "open"
    order_type: str = "limit"
    time_in_force: str = "good-till-time"
    nonce: int = 0
    created_ms: int = 0
    updated_ms: int = 0
    expiry_ms: int = 0
    block_height: int = 0
    transaction_time_us: int = 0

    @property
    def remaining(self) -> Decimal:
        return self.initial - self.filled

    @property
    def active(self) -> bool:
        return self.status == "open"


@dataclass
class Account:
    """One simulated Lighter account and the API key that may read it."""

    index: int
    l1_address: str
    api_key_index: int
    private_key: str
    public_key: str
    collateral: Decimal
    created_at: int
    positions: dict[int, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)  # active only
    transaction_time_us: int = 0

    def position(self, market_id: int) -> Position:
        if market_id not in self.positions:
            self.positions[market_id] = Position(market_id)
        return self.positions[market_id]

    def active_orders(self, market_id: int | None = None) -> list[Order]:
        orders = sorted(self.orders.values(), key=lambda o: o.order_index)
        return [o for o in orders if market_id is None or o.market_id == market_id]


def apply_fill(acct: Account, spec: MarketSpec, is_ask: bool, size: Decimal, price: Decimal) -> Decimal:
    """Move `acct`'s position by a fill; realized PnL goes to collateral. Returns the realized PnL.

    Selling (is_ask) reduces a long / grows a short; buying the reverse. A fill that crosses
    zero closes the old side at `price` and opens the remainder at `price`.
    """
    pos = acct.position(spec.market_id)
    delta = -size if is_ask else size
    realized = ZERO
    if pos.size == 0 or (pos.size > 0) == (delta > 0):
        new_size = pos.size + delta
        pos.avg_entry = (pos.avg_entry * abs(pos.size) + price * size) / abs(new_size)
        pos.avg_entry = pos.avg_entry.quantize(spec.tick)
        pos.size = new_size
    else:
        closing = min(abs(delta), abs(pos.size))
        direction = 1 if pos.size > 0 else -1
        realized = (price - pos.avg_entry) * closing * direction
        pos.size += delta
        if pos.size == 0:
            pos.avg_entry = ZERO
        elif (pos.size > 0) != (direction > 0):
            pos.avg_entry = price  # flipped side: the remainder was opened at this fill's price
    realized = realized.quantize(Decimal("0.000001"))
    pos.realized_pnl += realized
    acct.collateral += realized
    return realized


@dataclass(frozen=True)
class Metrics:
    """Derived account figures: everything that REST and user_stats report about money."""

    unrealized: Decimal
    total_asset_value: Decimal
    position_value: Decimal
    initial_margin: Decimal
    maintenance_margin: Decimal
    order_margin: Decimal
    available_balance: Decimal


def metrics(acct: Account, marks: dict[int, Decimal]) -> Metrics:
    """Compute PnL and margin figures at the given marks (cross margin only)."""
    unreal = pv = im = ZERO
    for pos in acct.positions.values():
        mark = marks[pos.market_id]
        imf = MARKETS_BY_ID[pos.market_id].initial_margin_fraction / 100
        unreal += pos.unrealized(mark)
        value = abs(pos.size) * mark
        pv += value
        im += value * imf
    om = ZERO
    for o in acct.orders.values():
        om += o.remaining * o.price * MARKETS_BY_ID[o.market_id].initial_margin_fraction / 100
    tav = acct.collateral + unreal
    return Metrics(unreal, tav, pv, im, im * Decimal("0.6"), om, max(ZERO, tav - im - om))


def liquidation_price(pos: Position, spec: MarketSpec, mark: Decimal, m: Metrics) -> Decimal:
    """Approximate cross-margin liquidation price: where account value falls to maintenance margin."""
    if pos.size == 0:
        return ZERO
    cushion = (m.total_asset_value - m.maintenance_margin) / abs(pos.size)
    liq = mark - cushion if pos.size > 0 else mark + cushion
    return max(ZERO, liq).quantize(spec.tick)
