"""The rate limit as real servers apply it: one budget per client across the shortcut, Flask and workers (Redis),
the JSON 429, and clients told apart behind a trusted proxy. Plus the batched Redis counting on its own."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import gevent
import requests
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import ConnectionError as RedisConnectionError

from app.rest.hits import BatchedIncr
from tests.app.conftest import Feeder
from tests.fixtures.procs import free_port
from tests.fixtures.web import run_web

AUTH = {"Authorization": "Bearer s3cret-token"}


def test_one_budget_across_workers_and_paths_on_redis(tmp_path, redis_url):
    env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": redis_url, "RATE_LIMIT": "20/minute",
           "API_TOKEN": "s3cret-token"}
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status()
    with run_web(env, workers=2) as web:
        url = f"{web.url}/api/accounts/5"
        # Refused tokens are Flask's to answer, and they count (guessing costs budget).
        assert [requests.get(url, timeout=5).status_code for _ in range(2)] == [401, 401]
        # Concurrent polls land on both workers, and in each on its shortcut (its mirror loads on first use).
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: requests.get(url, headers=AUTH, timeout=5), range(30)))
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code == 429]
        assert len(ok) == 18 and len(refused) == 12
        # Each request was counted once, in one shared window: the 200s saw every remaining value exactly once.
        assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in ok) == list(range(18))
        resets = {int(r.headers["X-RateLimit-Reset"]) for r in responses}
        assert max(resets) - min(resets) <= 1  # one window (Redis reports its end in whole seconds)
        for response in ok:
            assert response.headers["X-RateLimit-Limit"] == "20" and response.headers["Cache-Control"] == "no-cache"
            assert response.json()["account_index"] == 5 and response.headers["ETag"].startswith('W/"')
        for response in refused:
            assert response.headers["Content-Type"] == "application/json"
            assert response.json() == {"error": "Too Many Requests", "status": 429, "message": "20 per 1 minute"}
            assert response.headers["X-RateLimit-Remaining"] == "0" and response.headers["Cache-Control"] == "no-store"
            assert 0 < int(response.headers["Retry-After"]) <= 61
        # A poller that has the current version still gets its free 304.
        assert requests.get(url, headers={**AUTH, "If-None-Match": ok[0].headers["ETag"]}, timeout=5).status_code == 304


def test_clients_behind_a_trusted_proxy_have_their_own_budgets(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "2/minute", "TRUSTED_PROXIES": "1"}
    feeder = Feeder(env)
    feeder.track([5])
    with run_web(env) as web:
        url = f"{web.url}/api/accounts/5"

        def get(client: str) -> int:
            return requests.get(url, headers={"X-Forwarded-For": client}, timeout=5).status_code

        assert [get("203.0.113.1") for _ in range(3)] == [200, 200, 429]
        assert [get("203.0.113.2") for _ in range(3)] == [200, 200, 429]


def test_concurrent_counts_share_one_round_trip(redis_url, monkeypatch):
    storage = storage_from_string(redis_url)
    incr = BatchedIncr(storage)
    batches: list[int] = []
    send = incr._send
    monkeypatch.setattr(incr, "_send", lambda hits: batches.append(len(hits)) or send(hits))
    key = parse("100/minute").key_for("lb-limits", "192.0.2.7", "api.account")
    greenlets = [gevent.spawn(incr, key, 60) for _ in range(50)]
    gevent.joinall(greenlets, raise_error=True)
    assert sorted(g.value for g in greenlets) == list(range(1, 51)) and batches == [50]
    # The window is the one limits' fixed-window strategy reads: same key, same count, same expiry.
    stats = FixedWindowRateLimiter(storage).get_window_stats(parse("100/minute"), "lb-limits", "192.0.2.7",
                                                             "api.account")
    assert stats.remaining == 50 and time.time() + 55 < stats.reset_time <= time.time() + 61
    # A Redis that lost its scripts (restarted, SCRIPT FLUSH): counting goes on through limits, which reloads it.
    storage.get_connection().script_flush()
    assert incr(key, 60) == 51 and incr(key, 60) == 52


def test_a_failed_round_trip_fails_every_request_of_the_batch(monkeypatch):
    # Nothing listens there: the leader's pipeline fails, and each joiner gets the error instead of waiting on.
    incr = BatchedIncr(storage_from_string(f"redis://127.0.0.1:{free_port()}/0"))
    batches: list[int] = []
    send = incr._send
    monkeypatch.setattr(incr, "_send", lambda hits: batches.append(len(hits)) or send(hits))
    greenlets = [gevent.spawn(incr, "k", 60) for _ in range(3)]
    gevent.joinall(greenlets, timeout=10)
    assert batches == [3] and all(g.dead and isinstance(g.exception, RedisConnectionError) for g in greenlets)
