"""Market catalogue and decimal helpers shared by the model and the views (pure, no I/O)."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

USDC_DECIMALS = 6  # Lighter quotes USDC amounts with 6 decimals (size + price decimals = 6 everywhere here)


@dataclass(frozen=True)
class MarketSpec:
    """Static description of one perp market, mirroring an `orderBooks` entry."""

    market_id: int
    symbol: str
    size_decimals: int
    price_decimals: int
    start_price: Decimal
    min_base_amount: Decimal
    initial_margin_fraction: Decimal  # percent, e.g. 5.00 = 20x max leverage
    vol_bp: int  # per-tick standard deviation of the mark, in basis points

    @property
    def quote_decimals(self) -> int:
        return self.size_decimals + self.price_decimals

    @property
    def tick(self) -> Decimal:
        return Decimal(1).scaleb(-self.price_decimals)

    @property
    def lot(self) -> Decimal:
        return Decimal(1).scaleb(-self.size_decimals)

    def price(self, value: Decimal) -> str:
        return fmt(value, self.price_decimals)

    def size(self, value: Decimal) -> str:
        return fmt(value, self.size_decimals)


# Decimals follow the live venue's conventions (ETH 4/2, BTC 5/1); quote decimals are always 6.
MARKETS: tuple[MarketSpec, ...] = (
    MarketSpec(0, "ETH", 4, 2, Decimal("3150.00"), Decimal("0.0050"), Decimal("5.00"), 8),
    MarketSpec(1, "BTC", 5, 1, Decimal("96500.0"), Decimal("0.00020"), Decimal("2.00"), 6),
    MarketSpec(2, "SOL", 3, 3, Decimal("145.000"), Decimal("0.050"), Decimal("10.00"), 12),
    MarketSpec(3, "DOGE", 0, 6, Decimal("0.180000"), Decimal("10"), Decimal("10.00"), 15),
)
MARKETS_BY_ID: dict[int, MarketSpec] = {m.market_id: m for m in MARKETS}


def fmt(value: Decimal, places: int) -> str:
    """Render a Decimal with exactly `places` decimals, never as '-0.00'."""
    q = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if q.is_zero():
        q = abs(q)
    return format(q, "f")


def usdc(value: Decimal) -> str:
    """Render a USDC amount (collateral, PnL, margin) the way Lighter does: 6 decimals."""
    return fmt(value, USDC_DECIMALS)


def order_book_entry(spec: MarketSpec, open_interest: Decimal) -> dict:
    """One `OrderBook` object as served by `GET /api/v1/orderBooks` (strict-valid)."""
    return {
        "symbol": spec.symbol,
        "market_id": spec.market_id,
        "market_type": "perp",
        "base_asset_id": 0,
        "quote_asset_id": 0,
        "status": "active",
        "taker_fee": "0.0000",
        "maker_fee": "0.0000",
        "liquidation_fee": "1.0000",
        "min_base_amount": spec.size(spec.min_base_amount),
        "min_quote_amount": "10.000000",
        "supported_size_decimals": spec.size_decimals,
        "supported_price_decimals": spec.price_decimals,
        "supported_quote_decimals": spec.quote_decimals,
        "order_quote_limit": "",
        "is_maker_fee_enabled": False,
        "is_taker_fee_enabled": False,
        "created_at": "2025-01-01T00:00:00Z",
        "multiplier": "1",
        "start_timestamp": 0,
        "end_timestamp": 0,
        "settlement_type": 0,
        "settlement_price": 0,
        "settlement_cap": 0,
        "outcome": 0,
        "default_price": 0,
        "operator_account_index": 0,
        "is_frozen": False,
        "open_interest": spec.size(open_interest),
    }
