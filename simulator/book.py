"""Synthetic L2 order book per market, regenerated around the mark each tick (pure)."""
from __future__ import annotations

import random
from decimal import Decimal

from .markets import MarketSpec

LEVELS = 10


class BookState:
    """Current levels of one market plus the nonce/offset bookkeeping of `order_book` frames."""

    def __init__(self, spec: MarketSpec) -> None:
        self.spec = spec
        self.asks: dict[Decimal, Decimal] = {}
        self.bids: dict[Decimal, Decimal] = {}
        self.nonce = 0
        self.offset = 0
        self.last_updated_us = 0

    def regenerate(self, rng: random.Random, mark: Decimal, now_ms: int) -> dict:
        """Rebuild the levels around `mark` and return the delta (size '0' removes a level)."""
        spec = self.spec
        step = max(spec.tick, (mark * Decimal("0.0002")).quantize(spec.tick))
        new_asks = {mark + step * (i + 1): spec.min_base_amount * rng.randint(1, 50) for i in range(LEVELS)}
        new_bids = {mark - step * (i + 1): spec.min_base_amount * rng.randint(1, 50) for i in range(LEVELS)}
        new_bids = {p: s for p, s in new_bids.items() if p > 0}
        delta = {"asks": self._diff(self.asks, new_asks), "bids": self._diff(self.bids, new_bids)}
        self.asks, self.bids = new_asks, new_bids
        begin = self.nonce
        self.nonce += 1
        self.offset += 1
        self.last_updated_us = now_ms * 1000
        delta.update(begin_nonce=begin, nonce=self.nonce)
        return delta

    def _diff(self, old: dict[Decimal, Decimal], new: dict[Decimal, Decimal]) -> list[dict]:
        spec = self.spec
        out = [{"price": spec.price(p), "size": spec.size(s)} for p, s in new.items() if old.get(p) != s]
        out += [{"price": spec.price(p), "size": spec.size(Decimal(0))} for p in old if p not in new]
        return out

    def levels(self) -> dict:
        """Full book as served in the `subscribed/order_book` snapshot."""
        spec = self.spec
        return {
            "asks": [{"price": spec.price(p), "size": spec.size(s)} for p, s in sorted(self.asks.items())],
            "bids": [{"price": spec.price(p), "size": spec.size(s)}
                     for p, s in sorted(self.bids.items(), reverse=True)],
        }
