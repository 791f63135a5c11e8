"""Per-client rate limits on /api/* (flask-limiter), the same budget spent before Flask (`ClientBudget`), and client
addresses behind trusted proxies (ProxyFix). Every answer on a limited route carries X-RateLimit-* (304s too, read
without spending); Retry-After only on a 429 (at least 1 s) and a 503; each refused client is logged once per window
on every route (`log_refused`)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage
from werkzeug.middleware.proxy_fix import ProxyFix

from app.rest.hits import BatchedGet, BatchedIncr
from core.logs import fields
from core.settings import Settings

log = logging.getLogger(__name__)
LIMITS_KEY_PREFIX = "lb-limits"
SWEEP_EVERY_S = 1.0
# A 304's X-RateLimit-* when this process has counted nothing for the client in the window: read from the storage
# at most this often (a poller that only ever gets 304s would otherwise cost a storage round trip each).
PEEK_READ_EVERY_S = 1.0
# Fixed window: one counter per client and window. The moving window (one list entry per request, scanned on every
# check) cost more than the rest of a 200 together; docs/api.md says what clients see at a window's edge.
STRATEGY = "fixed-window"


class SweptMemoryStorage(MemoryStorage):
    """`limits`' memory storage (`lb-memory://`) without its expiry timer. MemoryStorage starts a 10 ms
    `threading.Timer` on the first hit after the last one fired: under gevent, a greenlet each time, which was a
    quarter of a WebSocket handshake's CPU in a connect burst. Counters already expire on read (MemoryStorage.get);
    the ones never read again are swept here, inline, at most once per SWEEP_EVERY_S."""

    STORAGE_SCHEME = ["lb-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions, **options)
        self._swept = time.monotonic()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - overrides the parent's name-mangled hook
        now = time.monotonic()
        if now - self._swept >= SWEEP_EVERY_S:
            self._swept = now
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]  # the parent's private sweep


def init_app(app: Flask, settings: Settings, blueprint: Blueprint, not_modified: Callable[[], bool],
             endpoints: tuple[str, ...] = ()) -> Limiter:
    """Limit `blueprint` to RATE_LIMIT per client address; conditional hits (`not_modified`) are not counted, yet
    their 304s on `endpoints` carry the client's X-RateLimit-* (read, not spent)."""
    item = parse(settings.rate_limit)
    # Redis makes the budget one across workers and instances; memory:// counts per process.
    storage = settings.redis_url.reveal() if settings.redis_url else "lb-memory://"
    options: dict[str, str | int] = dict(settings.redis_tls_options())
    limiter = Limiter(get_remote_address, storage_uri=storage, headers_enabled=True,
                      retry_after="delta-seconds", strategy=STRATEGY, swallow_errors=True,
                      key_prefix=LIMITS_KEY_PREFIX, storage_options=options)
    # Registered before the limiter's own hook, so it runs after it (Flask runs after_request hooks in reverse).
    app.after_request(lambda response: _finish(response, limiter, item, endpoints))
    limiter.init_app(app)
    # Its "exceeded" line covers only Flask's refusals; `log_refused` logs every route's alike.
    limiter_log = logging.getLogger("flask-limiter")
    limiter_log.setLevel(logging.WARNING)
    limiter_log.addFilter(StorageErrors())
    limiter.request_filter(not_modified)
    limiter.limit(settings.rate_limit)(blueprint)
    return limiter


class StorageErrors(logging.Filter):
    """With swallow_errors, flask-limiter logs a full traceback on every request while its storage (Redis) is down:
    one line per `every_s` instead, without the traceback (the web's store monitor logs the outage itself)."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.every_s, self.clock = every_s, clock
        self.last: float | None = None
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or "Swallowing error" not in record.getMessage():
            return True
        now = self.clock()
        if self.last is not None and now - self.last < self.every_s:
            self.suppressed += 1
            return False
        error = record.exc_info[1]
        record.msg = "rate-limit storage unavailable (%s); limits are not enforced meanwhile%s"
        more = f" ({self.suppressed} more since the last line)" if self.suppressed else ""
        record.args = (type(error).__name__, more)
        record.exc_info = record.exc_text = None
        self.last, self.suppressed = now, 0
        return True


def _finish(response: Response, limiter: Limiter, item: RateLimitItem, endpoints: tuple[str, ...]) -> Response:
    """Retry-After only where it means "wait this long": on a 429 (at least 1 s) or a 503, never on a 200.
    flask-limiter adds it to every response with headers, and rounds it down to 0 at a window's end."""
    status = response.status_code
    if status == 429:
        retry = response.headers.get("Retry-After", "")
        response.headers["Retry-After"] = str(max(1, int(retry))) if retry.isdigit() else "1"
        route = request.url_rule.rule if request.url_rule is not None else request.path
        log_refused(request.remote_addr, route, item.get_expiry())
    elif status != 503:
        response.headers.pop("Retry-After", None)
    if status == 304 and request.endpoint in endpoints and "X-RateLimit-Limit" not in response.headers:
        response.headers.extend(peek(limiter.storage, item, get_remote_address(), request.endpoint or ""))
    return response


def peek(storage: Any, item: RateLimitItem, address: str | None, endpoint: str) -> list[tuple[str, str]]:
    """The client's X-RateLimit-* on `endpoint` without spending anything (one storage read, two when the
    window is open); [] when the storage fails."""
    key = item.key_for(LIMITS_KEY_PREFIX, address or "127.0.0.1", endpoint)
    try:
        count = int(storage.get(key) or 0)
        reset = storage.get_expiry(key) if count else time.time() + item.get_expiry()
    except Exception:  # noqa: BLE001 - a 304 is answered without the headers rather than not at all
        log.debug("rate limit headers unavailable", exc_info=True)
        return []
    return [("X-RateLimit-Limit", str(item.amount)), ("X-RateLimit-Remaining", str(max(0, item.amount - count))),
            ("X-RateLimit-Reset", str(int(reset + 1)))]


class RefusalLog:
    """One log line per refused client, route and window: the same on every route (Flask's 429s and the
    shortcut's), and a flood of refusals cannot flood the log. Remembers at most `max_keys` clients."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._until: dict[tuple[str, str], float] = {}

    def refused(self, address: str | None, route: str, window_s: float) -> bool:
        """Log the refusal unless this client was already logged on `route` in this window; True if logged."""
        now = time.monotonic()
        key = (address or "-", route)
        if self._until.get(key, 0.0) > now:
            return False
        if len(self._until) >= self.max_keys:
            self._until = {k: t for k, t in self._until.items() if t > now}
            if len(self._until) >= self.max_keys:
                self._until.clear()
        self._until[key] = now + window_s
        log.info("rate limit reached by %s on %s", address or "-", route,
                 extra=fields(event="rate_limited", client=address or "-", route=route))
        return True


_refusals = RefusalLog()


def log_refused(address: str | None, route: str, window_s: float) -> None:
    _refusals.refused(address, route, window_s)


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
        self._counts: dict[str, int] = {}    # storage key -> its count at this process's last spend in that window
        self._read: dict[str, tuple[int, float, float]] = {}  # storage key -> (count, reset, when) a 304 read
        storage = limiter.storage
        # Exactly Redis (not Sentinel or Cluster, which route per key): concurrent requests share a round trip.
        self._incr: Callable[[str, int], int] = storage.incr
        self._get: Callable[[str], int] = storage.get
        if type(storage) is RedisStorage:
            self._incr, self._get = BatchedIncr(storage), BatchedGet(storage)

    def spend(self, address: str | None) -> tuple[bool, list[tuple[str, str]]] | None:
        """(allowed, X-RateLimit-* headers, and Retry-After when refused) after counting one request from
        `address`; None when the storage failed before counting, so the caller can let Flask answer (it lets
        requests through)."""
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
        self._counts[key] = count
        # flask-limiter's RequestLimit.reset_at; Retry-After as `_finish` leaves flask-limiter's.
        reset_at = int(reset + 1)
        allowed = count <= self.item.amount
        headers = [self.limit_header, ("X-RateLimit-Remaining", str(max(0, self.item.amount - count))),
                   ("X-RateLimit-Reset", str(reset_at))]
        if not allowed:  # "wait this long": never 0, a client obeying it would be refused again at once
            headers.append(("Retry-After", str(max(1, int(reset_at - now)))))
        return allowed, headers

    def peek(self, address: str | None, endpoint: str) -> list[tuple[str, str]]:
        """X-RateLimit-* for a 304 (not counted): the client's budget as of its last request this process counted
        in the current window, without a storage call (the 304 is the cheapest answer, and polling's most
        common); else read in one batched round trip (docs/api.md says so)."""
        key = self.item.key_for(LIMITS_KEY_PREFIX, address or "127.0.0.1", endpoint)
        now = time.time()
        reset = self._resets.get(key, 0.0)
        known = self._counts.get(key) if reset > now else None
        if known is None:
            read = self._read.get(key)  # a poller that only ever gets 304s: read at most every PEEK_READ_EVERY_S
            if read is not None and now - read[2] < PEEK_READ_EVERY_S and read[1] > now:
                known, reset = read[0], read[1]
        if known is not None:
            return [self.limit_header, ("X-RateLimit-Remaining", str(max(0, self.item.amount - known))),
                    ("X-RateLimit-Reset", str(int(reset + 1)))]
        try:
            count = self._get(key)
            if reset <= now:
                reset = self._remember(key, self.limiter.storage.get_expiry(key), now) if count else \
                    now + self.item.get_expiry()
        except Exception:  # noqa: BLE001 - a 304 is answered without the headers rather than not at all
            log.debug("rate limit headers unavailable", exc_info=True)
            return []
        if len(self._read) >= self.max_keys:
            self._read = {k: r for k, r in self._read.items() if now - r[2] < PEEK_READ_EVERY_S}
        self._read[key] = (count, reset, now)
        return [self.limit_header, ("X-RateLimit-Remaining", str(max(0, self.item.amount - count))),
                ("X-RateLimit-Reset", str(int(reset + 1)))]

    def _remember(self, key: str, reset: float, now: float) -> float:
        if len(self._resets) >= self.max_keys:  # one entry per recent client: forget the finished windows
            self._resets = {k: r for k, r in self._resets.items() if r > now}
            self._counts = {k: c for k, c in self._counts.items() if k in self._resets}
        self._resets[key] = reset
        return reset
