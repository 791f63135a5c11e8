"""Per-egress upstream budget (a rolling window, Lighter's is 60 s) and the planner that stretches intervals to fit.

The window is `WorkerTuning.budget_window_s` (WORKER_BUDGET_WINDOW_S): the tier's request count applies per window.
Only tests shorten it, against a simulator started with the same `--rate-window-s`.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

LIGHTER_WINDOW_S = 60.0  # Lighter counts requests per rolling minute
# Keep some of Lighter's allowance unused: clocks differ, and other clients may share an IP.
DEFAULT_HEADROOM = 0.10
# Share of the usable budget REST may plan for. With a live WebSocket, REST only reconciles, and one
# third-party measurement suggests WS traffic may draw on the same bucket, so it plans for half.
SHARE_WS = 0.5
SHARE_REST_ONLY = 1.0


@dataclass(frozen=True)
class Plan:
    """Effective intervals for one egress."""

    poll: float
    orders: float
    stretched: bool
    reason: str | None


def per_window(window_s: float) -> str:
    """How rates read for a window: "min" for Lighter's minute, else "<n>s"."""
    return "min" if window_s == LIGHTER_WINDOW_S else f"{window_s:g}s"


def plan(poll: float, orders: float, accounts: int, keyed: int, usable_per_window: int | None,
         share: float, window_s: float = LIGHTER_WINDOW_S) -> Plan:
    """Stretch both intervals by one factor so the egress's planned requests fit `share` of its budget."""
    if usable_per_window is None or accounts == 0:
        return Plan(poll, orders, False, None)
    demand = accounts * window_s / poll + keyed * window_s / orders
    allowed = usable_per_window * share
    if demand <= allowed:
        return Plan(poll, orders, False, None)
    factor = demand / allowed
    unit = per_window(window_s)
    reason = (f"{accounts} account(s) at configured intervals need {demand:.0f} requests/{unit}; "
              f"this egress may plan {allowed:.0f}/{unit}")
    return Plan(round(poll * factor, 3), round(orders * factor, 3), True, reason)


class UpstreamBudget:
    """Rolling-window request counter for one egress, plus a pause set by upstream's Retry-After.

    `per_window` is upstream's allowance per `window_s` (None: unlimited); `usable` is what we plan for.
    """

    def __init__(self, per_window: int | None, clock: Callable[[], float],
                 headroom: float = DEFAULT_HEADROOM, window_s: float = LIGHTER_WINDOW_S) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.usable = None if per_window is None else max(1, math.floor(per_window * (1 - headroom)))
        self._clock = clock
        self._sent: deque[float] = deque()
        self.paused_until = 0.0

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()

    def used(self) -> int:
        """Requests sent in the last window."""
        self._trim(self._clock())
        return len(self._sent)

    def wait_time(self) -> float:
        """Seconds until one more request may go out (0 = now)."""
        now = self._clock()
        wait = max(0.0, self.paused_until - now)
        if self.usable is not None:
            self._trim(now)
            if len(self._sent) >= self.usable:
                wait = max(wait, self._sent[len(self._sent) - self.usable] + self.window_s - now)
        return wait

    def spend(self) -> None:
        self._sent.append(self._clock())

    def pause(self, seconds: float) -> None:
        """Upstream said wait (429 Retry-After) or is failing (5xx/timeouts): nothing goes out until then."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)

