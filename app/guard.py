"""What a client without our token can spend: a per-address failure budget, and WebSocket admission pacing.

Failure budget: every request refused for a missing or wrong token (a 401 on any route, a refused /ws or /stream
handshake, a wrong `auth` in a /stream subscribe) counts against its address, in flask-limiter's own storage
(the `limits` library: Redis when REDIS_URL is set, so one budget across processes; memory otherwise). Once an
address has spent `WEB_AUTH_FAILURES` in a window of `WEB_AUTH_FAILURE_WINDOW_S`, everything it sends is refused
until the window ends (429 JSON with Retry-After; close 1008 on a WebSocket), a right token included: otherwise a
guesser would still learn which guess was right. The "spent" verdict is kept in this process (a dict lookup per
request, no storage round trip for clients that never fail), so with several processes an address learns it is
blocked in each of them on its next failure there.

Admission: WebSocket handshakes are admitted at most `WEB_WS_ADMIT_PER_S` per second per process and
`WEB_WS_ADMIT_PER_ADDRESS_PER_S` per address (in memory: it paces this process's own work); the rest are closed
with 1013 and a retry hint, before they cost an initial sync.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Flask, current_app
from limits import RateLimitItemPerSecond
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter

from app.rest.limits import SweptMemoryStorage
from core.tuning import WebTuning

log = logging.getLogger(__name__)
_KEY = "lb_guard"
FAILURES_NAMESPACE = "lb-auth-failures"
MAX_BLOCKED = 100_000         # addresses remembered as blocked; past it the finished ones are forgotten

StartResponse = Callable[..., Any]


class FailureBudget:
    """Refused tokens per address and window, counted in a `limits` storage shared with flask-limiter."""

    def __init__(self, storage: Storage, failures: int, window_s: float) -> None:
        self.item = RateLimitItemPerSecond(failures, max(1, int(window_s)))
        self.limiter = FixedWindowRateLimiter(storage)
        self._blocked: dict[str, float] = {}  # address -> epoch second its window ends

    def blocked(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it has budget left (as far as this process knows)."""
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - time.time()
        if left <= 0:
            del self._blocked[address]
            return None
        return max(1, math.ceil(left))

    def fail(self, address: str) -> bool:
        """Count one refused token; False when that spent the address's budget (it is blocked from now on). Two
        storage calls, only ever for a refused request."""
        try:
            self.limiter.hit(self.item, FAILURES_NAMESPACE, address)
            stats = self.limiter.get_window_stats(self.item, FAILURES_NAMESPACE, address)
            if stats.remaining > 0:
                return True
            reset = stats.reset_time
        except Exception as exc:  # noqa: BLE001 - storage down: refuse this one (401 anyway), block nobody
            # One line, no traceback: under a guessing attack with Redis down this runs per refused request.
            log.warning("auth failure budget: storage unavailable: %s", type(exc).__name__)
            return True
        if len(self._blocked) >= MAX_BLOCKED:
            now = time.time()
            self._blocked = {a: t for a, t in self._blocked.items() if t > now}
        self._blocked[address] = max(reset, time.time() + 1)
        return False


class Admission:
    """WebSocket handshakes per second, in total and per address, in this process."""

    def __init__(self, per_s: int, per_address_per_s: int) -> None:
        self.limiter = FixedWindowRateLimiter(SweptMemoryStorage())
        self.total = RateLimitItemPerSecond(per_s, 1)
        self.per_address = RateLimitItemPerSecond(per_address_per_s, 1)

    def admit(self, address: str, total: bool = True) -> bool:
        """Count one handshake from `address`; False when it is over either rate (retry after a second).
        `total=False` counts it against its address only: a connection that has not shown the token yet (a
        token-less /stream) must not spend the process's rate, or a few addresses without the token would leave
        none for the clients that have it. It is counted in total when it authenticates (`admit_total`)."""
        if not self.limiter.hit(self.per_address, "ws-admit", address):
            return False
        return not total or self.admit_total()

    def admit_total(self) -> bool:
        """Count one admission against the process's rate; False when it is over (retry after a second)."""
        return self.limiter.hit(self.total, "ws-admit")


class Guard:
    """The budget and the admission of one web process."""

    def __init__(self, storage: Storage, tuning: WebTuning) -> None:
        self.failures = FailureBudget(storage, tuning.auth_failures, tuning.auth_failure_window_s)
        self.admission = Admission(tuning.ws_admit_per_s, tuning.ws_admit_per_address_per_s)


def too_many(wait_s: int) -> tuple[str, list[tuple[str, str]], bytes]:
    """The JSON 429 for a spent failure budget (the shape of app/errors.error_response)."""
    body = orjson.dumps({"error": "Too Many Requests", "status": 429,
                         "message": f"too many refused tokens from this address; retry in {wait_s} s"})
    return "429 TOO MANY REQUESTS", [("Content-Type", "application/json"), ("Retry-After", str(wait_s)),
                                     ("Cache-Control", "no-store"), ("Content-Length", str(len(body)))], body


class Middleware:
    """WSGI layer (inside ProxyFix, so REMOTE_ADDR is the client's): a blocked address gets the 429 before any
    work, and every 401 any route answers counts against its address. WebSockets are answered by their views
    (the upgrade is done before any WSGI code runs), which consult the same budget."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], guard: Guard) -> None:
        self.app = app
        self.guard = guard

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("wsgi.websocket") is not None:
            return self.app(environ, start_response)
        address = environ.get("REMOTE_ADDR") or "?"
        budget = self.guard.failures
        wait = budget.blocked(address)
        if wait is not None:
            status, headers, body = too_many(wait)
            start_response(status, headers)
            return [body]

        def counting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if status.startswith("401"):
                budget.fail(address)
            return start_response(status, headers, exc_info)

        return self.app(environ, counting)


def init_app(app: Flask, storage: Storage, tuning: WebTuning) -> Guard:
    """Build the process's guard on `storage` (flask-limiter's) and wrap the WSGI app; call after the shortcut
    wraps it and before ProxyFix does."""
    guard = Guard(storage, tuning)
    app.extensions[_KEY] = guard
    app.wsgi_app = Middleware(app.wsgi_app, guard)  # type: ignore[method-assign]  # Flask documents wrapping it
    return guard


def guard() -> Guard:
    """The guard of the app handling the current request."""
    found: Guard = current_app.extensions[_KEY]
    return found
