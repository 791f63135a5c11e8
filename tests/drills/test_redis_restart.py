"""Drill 3: the Redis store restarted under load (our own redis-server, no persistence: it comes back empty).

Worker and web must both recover within 2 s of Redis coming back (issue 14): the worker rewrites every snapshot
(seq keeps growing), the web serves them again, and /ws clients get updates again, chained to what they saw or
marked resync. Meanwhile REST answers 503 (down, or back but still empty), never 404 for a tracked account. A
2 s outage and (slow tier) a 12 s one, long enough for every backoff to reach its cap.
"""
from __future__ import annotations

import time

import pytest

from tests.drills.clients import RestPoller, WsWatcher, now_ms
from tests.drills.helpers import live_stack
from tests.fixtures.redis import RedisServer

pytestmark = pytest.mark.drill
RECOVER_WITHIN_S = 2.0
SLACK_S = 0.3  # our own polling on a shared 2-core machine
CLIENTS = 5


@pytest.fixture
def own_redis():
    server = RedisServer()  # ours alone: stopping it disturbs no other test
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("down_for_s", [2.0, pytest.param(12.0, marks=pytest.mark.slow)])
def test_redis_restart_under_load(tmp_path, own_redis, down_for_s):
    store_env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": own_redis.url}
    with live_stack(tmp_path, store_env, accounts=2) as stack:
        stack.wait_until(stack.fresh_everywhere, 20, "fresh data before the restart")
        watchers = [WsWatcher(stack.web.ws_url, name=f"ws{n}") for n in range(CLIENTS)]
        # 503 while Redis is down, and while it is back but still empty (the worker has not rewritten yet).
        pollers = [RestPoller(stack.web.url, stack.accounts, every_s=every, allowed=(200, 304, 503))
                   for every in (0.1, 0.0)]  # one polite poller, one hammering
        try:
            for watcher in watchers:
                watcher.wait_for(lambda w: w.updates >= 3, 10, "live updates before the restart")
            seq_before = stack.worker.store().head()

            own_redis.stop()
            stopped_ms = now_ms()
            stack.wait_until(lambda: stack.get("/health").json()["store_reachable"] is False, 5,
                             "the web noticing the store is gone")
            stack.run_for(down_for_s)  # down for a while, under load; nothing may crash meanwhile
            assert stack.get(f"/api/accounts/{stack.accounts[0]}").status_code == 503
            for watcher in watchers:
                watcher.wait_for(lambda w: w.status_after(stopped_ms, lambda s: s["store"]["reachable"] is False),
                                 5, "a /ws status push saying the store is unreachable")

            own_redis.start()
            up = time.monotonic()
            up_ms = now_ms()
            store = stack.worker.store()

            def worker_recovered() -> bool:
                snapshots = store.accounts()
                status = store.status()
                return (len(snapshots) == len(stack.accounts) and all(s["seq"] > seq_before for s in snapshots)
                        and status is not None and status["heartbeat_at"] >= up_ms)

            stack.wait_until(worker_recovered, 15, "the worker rewriting the store", interval=0.02)
            worker_after = time.monotonic() - up

            def web_recovered() -> bool:
                health = stack.get("/health").json()
                return health["store_reachable"] and health["worker_up"] and stack.fresh_everywhere()

            stack.wait_until(web_recovered, 15, "the web serving fresh data again", interval=0.02)
            web_after = time.monotonic() - up
            for watcher in watchers:
                watcher.wait_for(lambda w: w.fresh_update_after(up_ms, stack.accounts), 15,
                                 "fresh /ws data after the restart")
            ws_after = time.monotonic() - up
            print(f"drill: after a {down_for_s:.0f} s outage, Redis back: worker {worker_after:.2f}s, "
                  f"web {web_after:.2f}s, /ws clients {ws_after:.2f}s")
            limit = RECOVER_WITHIN_S + SLACK_S
            assert worker_after <= limit, f"worker recovered {worker_after:.2f}s after Redis came back"
            assert web_after <= limit, f"web recovered {web_after:.2f}s after Redis came back"
            assert ws_after <= limit, f"/ws clients updated {ws_after:.2f}s after Redis came back"

            # And the feed carries on normally afterwards: every client keeps getting contiguous updates.
            marks = {w.name: now_ms() for w in watchers}
            for watcher in watchers:
                watcher.wait_for(lambda w: len(w.since(marks[w.name], ("update",))) >= 5, 10, "updates afterwards")
            stack.assert_alive()
            for watcher in watchers:
                assert watcher.closed is None, watcher.closed
                assert watcher.violations == [], watcher.violations[:10]
            for poller in pollers:
                assert poller.violations == [], poller.violations[:10]
                assert poller.statuses.get(200, 0) > 0 and poller.statuses.get(503, 0) > 0, poller.statuses
        finally:
            for watcher in watchers:
                watcher.close()
            for poller in pollers:
                poller.close()
