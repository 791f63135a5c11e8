"""Per-egress upstream budget (rolling 60 s window) and the planner that stretches intervals to fit it."""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_S = 60.0
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


def plan(poll: float, orders: float, accounts: int, keyed: int, usable_per_minute: int | None,
         share: float) -> Plan:
    """Stretch both intervals by one factor so the egress's planned requests fit `share` of its budget."""
    if usable_per_minute is None or accounts == 0:
        return Plan(poll, orders, False, None)
    demand = accounts * 60.0 / poll + keyed * 60.0 / orders
    allowed = usable_per_minute * share
    if demand <= allowed:
        return Plan(poll, orders, False, None)
    factor = demand / allowed
    reason = (f"{accounts} account(s) at configured intervals need {demand:.0f} requests/min; "
              f"this egress may plan {allowed:.0f}/min")
    return Plan(round(poll * factor, 3), round(orders * factor, 3), True, reason)


class Budget:
    """Rolling-minute request counter for one egress, plus a pause set by upstream's Retry-After."""

    def __init__(self, per_minute: int | None, clock: Callable[[], float],
                 headroom: float = DEFAULT_HEADROOM) -> None:
        self.per_minute = per_minute
        self.usable = None if per_minute is None else max(1, math.floor(per_minute * (1 - headroom)))
        self._clock = clock
        self._sent: deque[float] = deque()
        self.paused_until = 0.0

    def _trim(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - WINDOW_S:
            self._sent.popleft()

    def used(self) -> int:
        self._trim(self._clock())
        return len(self._sent)

    def wait_time(self) -> float:
        """Seconds until one more request may go out (0 = now)."""
        now = self._clock()
        wait = max(0.0, self.paused_until - now)
        if self.usable is not None:
            self._trim(now)
            if len(self._sent) >= self.usable:
                wait = max(wait, self._sent[len(self._sent) - self.usable] + WINDOW_S - now)
        return wait

    def spend(self) -> None:
        self._sent.append(self._clock())

    def pause(self, seconds: float) -> None:
        """Upstream said wait (429 Retry-After) or is failing (5xx/timeouts): nothing goes out until then."""
        self.paused_until = max(self.paused_until, self._clock() + seconds)
