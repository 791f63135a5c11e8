"""Per-client rate limits on /api/* (flask-limiter), the same budget spent before Flask (`ClientBudget`), and client
addresses behind trusted proxies (ProxyFix)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Blueprint, Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import parse
from limits.storage import RedisStorage
from werkzeug.middleware.proxy_fix import ProxyFix

from app.rest.hits import BatchedIncr
from core.settings import Settings

log = logging.getLogger(__name__)
LIMITS_KEY_PREFIX = "lb-limits"
# Fixed window: one counter per client and window. The moving window (one list entry per request, scanned on every
# check) cost more than the rest of a 200 together; docs/api.md says what clients see at a window's edge.
STRATEGY = "fixed-window"


def init_app(app: Flask, settings: Settings, blueprint: Blueprint, not_modified: Callable[[], bool]) -> Limiter:
    """Limit `blueprint` to RATE_LIMIT per client address; conditional hits (`not_modified`) are not counted."""
    # Redis makes the budget one across workers and instances; memory:// counts per process.
    storage = settings.redis_url.reveal() if settings.redis_url else "memory://"
    limiter = Limiter(get_remote_address, app=app, storage_uri=storage, headers_enabled=True,
                      retry_after="delta-seconds", strategy=STRATEGY, swallow_errors=True,
                      key_prefix=LIMITS_KEY_PREFIX)
    limiter.request_filter(not_modified)
    limiter.limit(settings.rate_limit)(blueprint)
    return limiter


def trust_proxies(app: Flask, settings: Settings) -> None:
    """Outermost WSGI layer: everything inside (the shortcut's budget included) sees the client's address."""
    if settings.trusted_proxies > 0:
        # Only this many hops of X-Forwarded-For are believed; with 0 a client could pick its own address.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask documents wrapping wsgi_app
            app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)


class ClientBudget:
    """RATE_LIMIT on one endpoint, spent without a Flask request, through flask-limiter's own storage with the
    same limit and key (prefix, client address, endpoint) as its fixed-window strategy: a request answered before
    Flask and one Flask answers draw from one budget and report it in the same headers.

    One storage call per request: `FixedWindowRateLimiter.hit` is `storage.incr(key) <= amount`, and incr's new
    count also gives X-RateLimit-Remaining. The window's end (X-RateLimit-Reset) is fixed when the window opens,
    so it is read once per window and client (on Redis a TTL) and kept here, instead of twice per request as
    flask-limiter's headers do (GET and TTL).
    """

    def __init__(self, limiter: Limiter, rate_limit: str, endpoint: str, max_keys: int) -> None:
        self.limiter = limiter
        self.item = parse(rate_limit)
        self.endpoint = endpoint
        self.max_keys = max_keys
        self.limit_header = ("X-RateLimit-Limit", str(self.item.amount))
        self._resets: dict[str, float] = {}  # storage key -> end of its current window (epoch seconds)
        storage = limiter.storage
        # Exactly Redis (not Sentinel or Cluster, which route per key): concurrent requests share a round trip.
        self._incr = BatchedIncr(storage) if type(storage) is RedisStorage else storage.incr

    def spend(self, address: str | None) -> tuple[bool, list[tuple[str, str]]] | None:
        """(allowed, X-RateLimit-* and Retry-After headers) after counting one request from `address`; None when
        the storage failed before counting, so the caller can let Flask answer (it lets requests through)."""
        storage = self.limiter.storage
        # get_remote_address's default included: the key flask-limiter builds for this endpoint's limit.
        key = self.item.key_for(LIMITS_KEY_PREFIX, address or "127.0.0.1", self.endpoint)
        try:
            count = self._incr(key, self.item.get_expiry())
        except Exception:  # noqa: BLE001 - storage down: flask-limiter's swallow_errors path decides
            log.debug("budget: incr failed", exc_info=True)
            return None
        now = time.time()
        reset = self._resets.get(key, 0.0)
        if count == 1 or reset <= now:  # a new window (ours, or opened by another process) or none known yet
            try:
                reset = self._remember(key, storage.get_expiry(key), now)
            except Exception:  # noqa: BLE001 - counted already; answer like flask-limiter does: without headers
                log.warning("rate limit headers unavailable", exc_info=True)
                return count <= self.item.amount, []
        # flask-limiter's RequestLimit.reset_at and its delta-seconds Retry-After, on every response.
        reset_at = int(reset + 1)
        return count <= self.item.amount, [
            self.limit_header, ("X-RateLimit-Remaining", str(max(0, self.item.amount - count))),
            ("X-RateLimit-Reset", str(reset_at)), ("Retry-After", str(int(reset_at - now)))]

    def _remember(self, key: str, reset: float, now: float) -> float:
        if len(self._resets) >= self.max_keys:  # one entry per recent client: forget the finished windows
            self._resets = {k: r for k, r in self._resets.items() if r > now}
        self._resets[key] = reset
        return reset
