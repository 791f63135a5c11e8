"""Drill 2: `kill -9` of the worker under live REST and /ws traffic, then a restart.

The web must keep serving the last data (flagged stale once older than CACHE_TTL), report the worker down
within 3 s, and a restarted worker must carry on the feed: seq keeps increasing, and since the restarted worker
is a new writer (a new lease epoch) clients get an explicit resync chained to nothing they must guess, then
updates chained to it.
"""
from __future__ import annotations

import signal
import time

import pytest

from tests.drills.clients import TTL_S, RestPoller, WsWatcher, now_ms
from tests.drills.helpers import live_stack

pytestmark = pytest.mark.drill
DOWN_WITHIN_S = 3.0
POLL_SLACK_S = 0.25  # our own polling granularity and request time on a shared 2-core machine


def test_kill_9_worker_then_restart(tmp_path):
    with live_stack(tmp_path, {"CACHE_DIR": str(tmp_path / "store")}, accounts=2) as stack:
        stack.wait_until(stack.fresh_everywhere, 20, "fresh data before the kill")
        watcher = WsWatcher(stack.web.ws_url, name="ws")
        poller = RestPoller(stack.web.url, stack.accounts)
        try:
            watcher.wait_for(lambda w: w.updates >= 5, 10, "live updates before the kill")
            old_pid = stack.status()["worker"]["pid"]
            assert old_pid == stack.worker.proc.pid

            stack.worker.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            killed_ms = now_ms()
            stack.worker.proc.wait(timeout=5)
            stack.killed.add("worker")
            assert stack.worker.proc.returncode == -signal.SIGKILL
            # What the worker wrote last is final now; a write from just before the kill may still be on its way
            # to the watcher, so wait for it rather than snapshot the watcher mid-flight.
            store = stack.worker.store()
            last_seen = {index: store.account(index)["seq"] for index in stack.accounts}
            watcher.wait_for(lambda w: all(w.last.get(i) == seq for i, seq in last_seen.items()), 5,
                             "the last writes before the kill on /ws")
            settled = len(watcher.messages)  # a position, not a time: receipts share milliseconds

            # /api/status shows the worker down within 3 s of the kill.
            stack.wait_until(lambda: stack.status()["worker"]["up"] is False, 10, "worker down in /api/status",
                             interval=0.02)
            down_after = time.monotonic() - killed
            assert down_after <= DOWN_WITHIN_S + POLL_SLACK_S, f"worker reported down only after {down_after:.2f}s"
            print(f"drill: worker reported down {down_after:.2f}s after kill -9")
            health = stack.get("/health").json()
            assert health["worker_up"] is False and health["store_reachable"] is True

            # The web keeps serving the last data, flagged stale with its age once past the TTL.
            def stale_but_served() -> bool:
                for index in stack.accounts:
                    response = stack.get(f"/api/accounts/{index}")
                    body = response.json()
                    if response.status_code != 200 or not body["stale"] or body["age_ms"] <= TTL_S * 1000:
                        return False
                    assert all(body["sections"][n]["data"] is not None for n in ("summary", "positions", "stats"))
                    assert body["seq"] == last_seen[index]  # nobody wrote: exactly the last good snapshot
                return True

            stack.wait_until(stale_but_served, TTL_S + 5, "last data served and flagged stale")
            watcher.wait_for(lambda w: w.status_after(killed_ms, lambda s: s["worker"]["up"] is False and all(
                a["stale"] for a in s["accounts"].values())), 5, "a /ws status push: worker down, accounts stale")
            # Nothing new to say, and nothing made up.
            assert [m for _, m in watcher.messages[settled:] if m.get("type") == "update"] == []

            # A restarted worker resumes the feed from the store.
            restarted_ms = now_ms()
            worker = stack.start_worker()
            stack.wait_until(lambda: (s := stack.status())["worker"]["up"] and s["worker"]["pid"] == worker.proc.pid,
                             15, "the new worker up in /api/status")
            stack.wait_until(stack.fresh_everywhere, 15, "fresh data from the restarted worker")
            watcher.wait_for(lambda w: w.fresh_update_after(restarted_ms, stack.accounts), 10,
                             "fresh /ws updates from the restarted worker")
            after = watcher.since(restarted_ms)
            assert after and min(m["seq"] for m in after) > max(last_seen.values())
            # A new writer (epoch) is announced as a resync: one snapshot per account, before any update of it.
            old_epoch, new_epoch = {m["account"].get("epoch") for _, m in watcher.messages[:settled]
                                    if m.get("type") in ("update", "snapshot")}, stack.status()["worker"]["epoch"]
            assert new_epoch is not None and all(e is not None and e < new_epoch for e in old_epoch), old_epoch
            first = {}
            for message in after:
                first.setdefault(message["account_index"], message)
            assert all(m["type"] == "snapshot" and m.get("resync") for m in first.values()), first
            assert watcher.resyncs == len(stack.accounts)

            stack.assert_alive()
            assert watcher.closed is None, watcher.closed
            assert watcher.violations == [], watcher.violations[:10]
            assert poller.violations == [] and not poller.errors, (poller.violations[:10], poller.errors[:5])
        finally:
            watcher.close()
            poller.close()


def test_kill_9_mid_write_then_restart(tmp_path):
    """A kill -9 can land inside a store write (account key written, head not yet moved). Simulated exactly: the
    restarted worker must not reuse that seq, and clients get a chain or a resync, never a contradiction."""
    with live_stack(tmp_path, {"CACHE_DIR": str(tmp_path / "store")}, accounts=2) as stack:
        stack.wait_until(stack.fresh_everywhere, 20, "fresh data before the kill")
        watcher = WsWatcher(stack.web.ws_url, name="ws")
        poller = RestPoller(stack.web.url, stack.accounts)
        try:
            watcher.wait_for(lambda w: w.updates >= 3, 10, "live updates before the kill")
            stack.worker.proc.send_signal(signal.SIGKILL)
            stack.worker.proc.wait(timeout=5)
            stack.killed.add("worker")
            store = stack.worker.store()
            head, index = store.head(), stack.accounts[0]
            torn = head + 1
            store._set(f"account:{index}", {**store.account(index), "seq": torn, "written_at": now_ms()})
            stack.wait_until(lambda: (b := poller.body(index)) is not None and b["seq"] == torn, 5,
                             "the web serving the torn write")

            restarted_ms = now_ms()
            stack.start_worker()
            stack.wait_until(stack.fresh_everywhere, 15, "fresh data from the restarted worker")
            watcher.wait_for(lambda w: w.fresh_update_after(restarted_ms, stack.accounts), 10,
                             "fresh /ws data from the restarted worker")
            mine = [m for m in watcher.since(restarted_ms) if m["account_index"] == index]
            assert mine and all(m["seq"] > torn for m in mine), [m["seq"] for m in mine]
            assert stack.get(f"/api/accounts/{index}").json()["seq"] > torn
            stack.assert_alive()
            assert watcher.closed is None, watcher.closed
            assert watcher.violations == [], watcher.violations[:10]
            assert poller.violations == [] and not poller.errors, (poller.violations[:10], poller.errors[:5])
        finally:
            watcher.close()
            poller.close()
