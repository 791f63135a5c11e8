"""Rate-limit headers that mean what they say: Retry-After only on a 429 (never 0) and a 503, X-RateLimit-* on
304s too, one log line per refused client and window on every route, whether Flask or the shortcut answered."""
from __future__ import annotations

import logging
import threading
import time

import gevent
import pytest
import requests
from flask import Response
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app import create_app
from app.rest import limits
from app.rest.hits import BatchedGet
from app.services import of
from core.settings import from_env
from tests.app.conftest import Feeder
from tests.fixtures.web import run_web
from tests.waiting import wait_for


@pytest.fixture
def client(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "3/minute"}
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status()
    app = create_app(from_env(env))
    return app.test_client()


@pytest.mark.parametrize("path", ["/api/accounts/5", "/api/accounts"])  # the shortcut's 200, Flask's 200
def test_a_200_has_no_retry_after_and_a_429_waits_at_least_a_second(client, path):
    ok = [client.get(path) for _ in range(3)]
    assert [r.status_code for r in ok] == [200, 200, 200]
    for response in ok:
        assert "Retry-After" not in response.headers, "a 200 must not tell clients to wait"
        assert response.headers["X-RateLimit-Limit"] == "3"
    assert [r.headers["X-RateLimit-Remaining"] for r in ok] == ["2", "1", "0"]
    refused = client.get(path)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(ok[0].headers["X-RateLimit-Reset"])


@pytest.mark.parametrize("path", ["/api/accounts/5", "/api/accounts"])
def test_a_304_carries_the_budget_without_spending_it(client, path):
    first = client.get(path)
    etag = first.headers["ETag"]
    for _ in range(5):
        cached = client.get(path, headers={"If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.headers["X-RateLimit-Limit"] == "3"
        assert cached.headers["X-RateLimit-Remaining"] == "2", "a 304 is free: the budget stays where it was"
        assert cached.headers["X-RateLimit-Reset"] == first.headers["X-RateLimit-Reset"]
        assert "Retry-After" not in cached.headers


def test_a_304_before_any_counted_request_reports_the_whole_budget(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "3/minute"}
    feeder = Feeder(env)
    feeder.track([5])
    app = create_app(from_env(env))
    etag = app.test_client().get("/api/accounts/5").headers["ETag"]
    other = app.test_client()
    cached = other.get("/api/accounts/5", headers={"If-None-Match": etag}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert cached.status_code == 304 and cached.headers["X-RateLimit-Remaining"] == "3"


def test_the_shortcut_never_says_retry_after_0_at_a_window_end(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "1/minute"}
    Feeder(env).track([5])
    budget = of(create_app(from_env(env))).budget
    allowed, _ = budget.spend("10.0.0.1")
    assert allowed
    # The window as this process remembers it ends in 10 ms: flask-limiter's arithmetic (reset rounded up to a
    # whole second, minus now, rounded down) gives 0 here for any fraction of a second but .99.
    (key,) = budget._resets
    budget._resets[key] = time.time() + 0.01
    allowed, headers = budget.spend("10.0.0.1")
    assert not allowed and dict(headers)["Retry-After"] == "1"


def test_flask_answers_get_the_same_rule(tmp_path):
    app = create_app(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    item, limiter = limits.parse("3/minute"), of(app).budget.limiter
    with app.test_request_context("/api/accounts"):
        for status, given, kept in [(429, "0", "1"), (429, "17", "17"), (200, "60", None), (304, "60", None),
                                    (503, "2", "2")]:
            response = Response(status=status, headers={"Retry-After": given})
            assert limits._finish(response, limiter, item, ()).headers.get("Retry-After") == kept


def test_429s_are_logged_once_per_client_and_window_on_every_route(client, caplog):
    caplog.set_level(logging.INFO, logger="app.rest.limits")
    limits._refusals._until.clear()
    for path in ("/api/accounts/5", "/api/accounts"):  # the shortcut's 429, Flask's 429
        statuses = [client.get(path).status_code for _ in range(6)]
        assert statuses == [200] * 3 + [429] * 3
    lines = [r for r in caplog.records if r.name == "app.rest.limits"]
    assert [r.getMessage() for r in lines] == ["rate limit reached by 127.0.0.1 on /api/accounts/<index>",
                                               "rate limit reached by 127.0.0.1 on /api/accounts"]
    assert all(r.lb_fields["event"] == "rate_limited" for r in lines)
    assert not [r for r in caplog.records if r.name == "flask-limiter" and r.levelno < logging.WARNING]


def test_the_refusal_log_forgets_old_clients_within_its_bound():
    log = limits.RefusalLog(max_keys=3)
    assert [log.refused(f"10.0.0.{n}", "/r", 60) for n in range(5)] == [True] * 5
    assert len(log._until) <= 3
    assert log.refused("10.0.0.4", "/r", 60) is False


def test_the_etag_moves_only_with_the_data_as_docs_api_says(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store")}
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status()
    client = create_app(from_env(env)).test_client()
    tags = {client.get("/api/accounts/5").headers["ETag"] for _ in range(5)}
    assert len(tags) == 1, "polling faster than X-Poll-Interval gets the same version"
    (before,) = tags
    assert client.get("/api/accounts/5", headers={"If-None-Match": before}).status_code == 304
    feeder.put(5, collateral="101.000000")
    # The web sees the write one watcher wake-up later (a greenlet: let it run while waiting).
    changed = wait_for(lambda: (r := client.get("/api/accounts/5", headers={"If-None-Match": before})).status_code
                       == 200 and r, 5, "the new version", idle=gevent.sleep)
    assert changed.headers["ETag"] != before
    assert changed.json["sections"]["summary"]["data"]["collateral"] == "101.000000"


def test_concurrent_304_reads_share_one_round_trip(redis_url, monkeypatch):
    storage = storage_from_string(redis_url)
    key = parse("100/minute").key_for("lb-limits", "192.0.2.8", "api.account")
    for _ in range(7):
        storage.incr(key, 60)
    get = BatchedGet(storage)
    batches: list[int] = []
    send = get._send
    monkeypatch.setattr(get, "_send", lambda keys: batches.append(len(keys)) or send(keys))
    greenlets = [gevent.spawn(get, key if n % 2 else key + "-other") for n in range(20)]
    gevent.joinall(greenlets, raise_error=True)
    assert batches == [20] and sorted(g.value for g in greenlets) == [0] * 10 + [7] * 10


def test_304s_on_redis_report_the_shared_budget(tmp_path, redis_url):
    env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": redis_url, "RATE_LIMIT": "5/minute"}
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status()
    with run_web(env) as web:
        url = f"{web.url}/api/accounts/5"
        first = requests.get(url, timeout=5)
        second = requests.get(url, timeout=5)
        assert [first.headers["X-RateLimit-Remaining"], second.headers["X-RateLimit-Remaining"]] == ["4", "3"]
        for _ in range(4):
            cached = requests.get(url, headers={"If-None-Match": second.headers["ETag"]}, timeout=5)
            assert cached.status_code == 304 and cached.headers["X-RateLimit-Remaining"] == "3"
            assert cached.headers["X-RateLimit-Reset"] == second.headers["X-RateLimit-Reset"]
            assert "Retry-After" not in cached.headers


def test_storage_errors_are_one_line_per_minute_without_a_traceback():
    """flask-limiter logs a traceback per request while Redis is down: the filter keeps one line per minute."""
    import logging

    from app.rest.limits import StorageErrors

    now = [100.0]
    quiet = StorageErrors(60.0, clock=lambda: now[0])

    def record() -> logging.LogRecord:
        try:
            raise ConnectionError("redis down")
        except ConnectionError:
            import sys

            return logging.LogRecord("flask-limiter", logging.ERROR, __file__, 1,
                                     "Failed to rate limit. Swallowing error", None, sys.exc_info())

    first = record()
    assert quiet.filter(first) and first.exc_info is None and "ConnectionError" in first.getMessage()
    assert [quiet.filter(record()) for _ in range(50)] == [False] * 50
    now[0] += 61
    later = record()
    assert quiet.filter(later) and "50 more" in later.getMessage()
    plain = logging.LogRecord("flask-limiter", logging.WARNING, __file__, 1, "other", None, None)
    assert quiet.filter(plain) and plain.getMessage() == "other"


def test_the_memory_storage_expires_without_a_timer_and_sweeps_what_is_never_read_again(monkeypatch) -> None:
    """lb-memory:// counts as limits' memory storage does, but starts no timer per burst of hits (a greenlet each,
    under gevent); a counter nobody reads again is swept by a later hit, at most once per SWEEP_EVERY_S."""
    clock = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    storage = storage_from_string("lb-memory://")
    assert isinstance(storage, limits.SweptMemoryStorage)
    limiter = FixedWindowRateLimiter(storage)
    item = parse("2/second")
    threads = threading.active_count()
    assert [limiter.hit(item, "gone") for _ in range(3)] == [True, True, False]
    assert threading.active_count() <= threads  # no expiry timer started by the hits
    expired = [key for key in storage.storage if "gone" in key]
    assert expired
    storage.expirations[expired[0]] = 0.0  # its window is over; nobody asks for "gone" again
    clock[0] += limits.SWEEP_EVERY_S / 2
    limiter.hit(item, "other")
    assert expired[0] in storage.storage  # not yet: one sweep per SWEEP_EVERY_S
    clock[0] += limits.SWEEP_EVERY_S
    limiter.hit(item, "other")
    assert expired[0] not in storage.storage


def test_a_poller_that_only_gets_304s_costs_one_storage_read_per_second(monkeypatch) -> None:
    """With nothing counted for the client in this process, a 304's X-RateLimit-* is read from the storage at most
    every PEEK_READ_EVERY_S; a request counted meanwhile (here or in another process) shows from the next read."""
    from types import SimpleNamespace

    clock = [5000.0]
    monkeypatch.setattr(limits.time, "time", lambda: clock[0])
    storage = limits.SweptMemoryStorage()
    budget = limits.ClientBudget(SimpleNamespace(storage=storage), "100/minute", "api.account", 1000)
    reads: list[str] = []
    monkeypatch.setattr(budget, "_get", lambda key: reads.append(key) or storage.get(key))
    key = budget.item.key_for(limits.LIMITS_KEY_PREFIX, "192.0.2.9", "api.account")

    def remaining() -> str:
        return dict(budget.peek("192.0.2.9", "api.account"))["X-RateLimit-Remaining"]

    assert [remaining() for _ in range(5)] == ["100"] * 5 and len(reads) == 1
    storage.incr(key, 60)  # another process counts a request
    clock[0] += limits.PEEK_READ_EVERY_S / 2
    assert remaining() == "100" and len(reads) == 1  # at most a second old
    clock[0] += limits.PEEK_READ_EVERY_S
    assert remaining() == "99" and len(reads) == 2
