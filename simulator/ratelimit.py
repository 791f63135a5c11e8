"""Rolling-window rate limiter per egress (pure; the clock is passed in).

Tiers (doc §5): standard = 60 requests/min unweighted; premium = 24,000 weight/min; unlimited.
The window is Lighter's minute unless `--rate-window-s` shortens it (tests): the tier's allowance then applies
per that window.
Rejected requests do not consume budget, so `Retry-After` is exact and a client that honours it
recovers; hammering still gets nothing until the window frees a slot.
"""
from __future__ import annotations

import math
from collections import deque

WINDOW_S = 60.0  # Lighter's window
TIERS = ("standard", "premium", "unlimited")
STANDARD_REQUESTS = 60
PREMIUM_WEIGHT = 24_000
DEFAULT_WEIGHT = 300  # "everything else", including account and accountActiveOrders
WEIGHTS = {
    "sendTx": 6, "sendTxBatch": 6, "nextNonce": 6, "publicPools": 50, "txFromL1TxHash": 50,
    "accountInactiveOrders": 100, "apikeys": 150, "transferFeeInfo": 500, "trades": 600, "recentTrades": 600,
}


def weight_of(path: str) -> int:
    """Lighter's weight for an `/api/v1/<name>` path."""
    return WEIGHTS.get(path.rsplit("/", 1)[-1], DEFAULT_WEIGHT)


class RateLimiter:
    """Per-egress sliding windows of (time, weight) entries."""

    def __init__(self, tier: str, window_s: float = WINDOW_S) -> None:
        if not window_s > 0:
            raise ValueError(f"the rate-limit window must be positive (got {window_s!r})")
        self.window_s = window_s
        self.set_tier(tier)
        self.windows: dict[str, deque[tuple[float, int]]] = {}

    def set_tier(self, tier: str) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {TIERS}")
        self.tier = tier

    def _window(self, egress: str, now: float) -> deque[tuple[float, int]]:
        win = self.windows.setdefault(egress, deque())
        while win and win[0][0] <= now - self.window_s:
            win.popleft()
        return win

    def acquire(self, egress: str, weight: int, now: float) -> int | None:
        """Admit a request (returns None) or return Retry-After seconds (>= 1)."""
        if self.tier == "unlimited":
            return None
        win = self._window(egress, now)
        # Standard counts requests, premium sums weights.
        cost, limit = (1, STANDARD_REQUESTS) if self.tier == "standard" else (weight, PREMIUM_WEIGHT)
        used = len(win) if self.tier == "standard" else sum(w for _, w in win)
        if used + cost <= limit:
            win.append((now, weight))
            return None
        # Find when enough old entries leave the window for this request to fit.
        excess = used + cost - limit
        for t, w in win:
            excess -= 1 if self.tier == "standard" else w
            if excess <= 0:
                return max(1, math.ceil(t + self.window_s - now))
        return max(1, math.ceil(self.window_s))  # a single request heavier than the whole budget

    def weight_used(self, now: float) -> dict[str, int]:
        return {e: sum(w for _, w in self._window(e, now)) for e in list(self.windows)}

    def reset(self) -> None:
        self.windows.clear()
