"""The store contract against both real backends: a file directory and our own redis-server."""
import threading

import orjson
import pytest

from core.settings import from_env
from core.snapshot import new_snapshot, with_freshness
from core.store import FEED_SIZE, Store
from tests.waiting import wait_for


@pytest.fixture(params=["file", "redis"])
def store(request, tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store")}
    if request.param == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    return Store.from_settings(from_env(env))


def test_snapshot_roundtrip_and_feed(store):
    store.set_tracked([1, 2])
    for seq, index in enumerate([1, 2, 1], start=1):
        snap = new_snapshot(index, public_only=False)
        snap["sections"]["summary"]["data"] = {"collateral": f"{seq}.000000"}
        store.put_account(snap, seq)
    assert store.head() == 3
    assert [a["account_index"] for a in store.accounts()] == [1, 2]
    assert store.account(1)["sections"]["summary"]["data"]["collateral"] == "3.000000"
    changes = store.changes_since(1)
    assert [(c.seq, c.snapshot["account_index"]) for c in changes] == [(2, 2), (3, 1)]
    assert store.changes_since(3) == []
    assert store.account(99) is None


def test_feed_gap_means_resync(store):
    for seq in range(1, FEED_SIZE + 3):
        if seq in (1, 2, FEED_SIZE + 2):
            store.put_account(new_snapshot(1, False), seq)
        else:
            store._set("head", seq)  # simulate the many writes in between cheaply
    assert store.changes_since(0) is None
    assert store.changes_since(5) is None  # slot for seq 6 never written at that seq


def test_status_carries_heartbeat(store):
    store.put_status({"mode": "ws"})
    status = store.status()
    assert status["mode"] == "ws" and status["heartbeat_at"] > 0


def test_follow_wakes_on_change(store):
    stop = threading.Event()
    batches = []

    def reader():
        for batch in store.follow(0, stop, timeout=0.2):
            batches.append(batch)
            if batch:
                stop.set()

    thread = threading.Thread(target=reader)
    thread.start()
    store.put_account(new_snapshot(7, False), 1)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [c.seq for c in batches[-1]] == [1]


class Following:
    """`store.follow(0)` in a thread for the length of a `with`, keeping every batch it yields ([] included)."""

    def __init__(self, store: Store) -> None:
        self.store, self.batches, self.stop, self.seen = store, [], threading.Event(), threading.Condition()
        self.thread = threading.Thread(target=self._read)

    def _read(self) -> None:
        for batch in self.store.follow(0, self.stop, timeout=0.2):
            with self.seen:
                self.batches.append(batch or [])
                self.seen.notify_all()

    def changes(self) -> list:
        return [c for b in self.batches for c in b]

    def wait(self, predicate, timeout: float = 10) -> None:
        """Until `predicate` holds, re-checked (under the lock) each time the follower yields a batch."""
        with self.seen:
            try:
                wait_for(predicate, timeout, "the follower to yield the awaited changes", interval=timeout,
                         idle=self.seen.wait)
            except AssertionError as exc:
                raise AssertionError(f"{exc}; seqs followed: {[c.seq for c in self.changes()]}") from None

    def __enter__(self) -> "Following":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_changes_written_together_are_consecutive_and_followed_in_order(store):
    with Following(store) as following:
        following.wait(lambda: following.batches)  # caught up (its first periodic yield) before the write
        store.put_accounts([(new_snapshot(7, False), 1), (new_snapshot(8, False), 2), (new_snapshot(7, False), 3)])
        following.wait(lambda: len(following.changes()) >= 3)
    batches = [b for b in following.batches if b]
    assert [(c.seq, c.snapshot["account_index"]) for b in batches for c in b] == [(1, 7), (2, 8), (3, 7)]
    if store.kind == "file":  # one head poll sees all three (on Redis they come as messages, usually together)
        assert len(batches) == 1
    assert store.head() == 3 and store.account(7)["seq"] == 3 and store.account(8)["seq"] == 2


def test_freshness_is_computed_at_read_time():
    snap = new_snapshot(1, False)
    snap["as_of"] = 1_000
    snap["sections"]["summary"].update(as_of=1_000, data={"collateral": "1"}, source="rest")
    fresh = with_freshness(snap, ttl_s=5, now=3_000)
    assert (fresh["age_ms"], fresh["stale"], fresh["sections"]["summary"]["stale"]) == (2_000, False, False)
    old = with_freshness(snap, ttl_s=5, now=7_000)
    assert old["stale"] and old["age_ms"] == 6_000
    assert with_freshness(new_snapshot(2, False), 5)["stale"] is True


def test_file_store_directory_is_private(tmp_path):
    Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "s")}))
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o700


def test_redis_connections_wait_instead_of_failing(redis_url, tmp_path):
    """A burst of /ws syncs (one greenlet each) must queue for connections, not raise "Too many connections":
    the bench's reconnect storm lost 802 of 1,000 clients that way with redis-py's default pool."""
    import redis

    store = Store.from_settings(from_env({"REDIS_URL": redis_url, "CACHE_DIR": str(tmp_path)}))
    pool = store._redis.connection_pool
    assert isinstance(pool, redis.BlockingConnectionPool)
    held = [pool.get_connection() for _ in range(pool.max_connections)]
    with pytest.raises(redis.ConnectionError):  # waits `timeout`, then gives up: bounded back-pressure
        pool.timeout = 0.2
        pool.get_connection()
    for connection in held:
        pool.release(connection)
    assert store.head() == 0


def test_a_caught_up_follower_takes_changes_from_messages_and_reads_after_a_gap(redis_url, tmp_path):
    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": redis_url}))
    with Following(store) as following:
        def wait_for_seq(seq):
            following.wait(lambda: following.changes() and following.changes()[-1].seq >= seq)

        store.put_account(new_snapshot(7, False), 1)
        wait_for_seq(1)
        # Caught up: the message alone carries change 2 (neither head nor the ring has it), so only a follower
        # that takes it from the message can yield it.
        store._redis.publish("lb:changes", orjson.dumps({**new_snapshot(8, False), "seq": 2}))
        wait_for_seq(2)
        store._set("head", 2)
        # An older writer's message (the bare seq) is a gap signal: the follower reads head and the ring.
        store._set("change:3", {**new_snapshot(9, False), "seq": 3})
        store._set("head", 3)
        store._redis.publish("lb:changes", "3")
        wait_for_seq(3)
    assert [(c.seq, c.snapshot["account_index"]) for c in following.changes()] == [(1, 7), (2, 8), (3, 9)]


# -- no pickle: values are plain bytes, and a planted pickle is refused, never executed (issue 13 item 7) --------

class _Plant:
    """Unpickling this creates `path`: proof that a pickle was executed."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _plant_pickle(store, key, marker_path):
    import pickle
    import struct

    payload = pickle.dumps(_Plant(str(marker_path)))
    if store.kind == "redis":
        store._redis.set("lb:" + key, b"!" + payload)  # cachelib's own Redis pickle format
    else:
        filename = store._cache._get_filename(key)
        with open(filename, "wb") as f:
            f.write(struct.pack("I", 0) + payload)  # cachelib's own file format: expiry, then the pickle


def test_values_are_stored_as_plain_json_bytes(store):
    store.set_tracked([3, 1])
    raw = (store._redis.get("lb:accounts") if store.kind == "redis"
           else open(store._cache._get_filename("accounts"), "rb").read()[4:])
    assert raw == b"[3,1]"


@pytest.mark.parametrize("key", ["accounts", "account:1", "head", "status"])
def test_a_planted_pickle_is_refused_logged_once_and_never_executed(store, tmp_path, caplog, key):
    marker = tmp_path / f"executed-{key.replace(':', '-')}"
    store.set_tracked([1])
    store.put_account(new_snapshot(1, False), 1)
    _plant_pickle(store, key, marker)
    with caplog.at_level("WARNING", logger="core.store"):
        for _ in range(3):
            assert store.status() is None or key != "status"
            assert store.account(1) is None or key != "account:1"
            assert store.populated() is (key != "accounts")
            assert store.head() == (0 if key == "head" else 1)
    assert not marker.exists(), "the pickle was executed"
    refused = [r for r in caplog.records if key in r.getMessage() and "a pickle" in r.getMessage()]
    assert len(refused) == 1  # logged once, not on every read
    # The worker's self-check sees it as lost and rewrites it (the status is rewritten every second anyway).
    assert (store.lost([1], 1) is not None) is (key != "status")


def test_garbage_values_read_as_missing(store):
    store.set_tracked([1])
    store.put_account(new_snapshot(1, False), 1)
    store._cache.set("accounts", b'[1, 2')  # truncated
    store._cache.set("account:1", b'"not an account"')  # JSON, but not a snapshot
    assert store.tracked() == [] and not store.populated()
    assert store.account(1) is None and store.accounts() == []
    assert store.lost([1], 1) == "the tracked list"
    store.set_tracked([1])
    assert store.lost([1], 1) == "account:1"


def test_only_bytes_go_in(store):
    with pytest.raises(TypeError):
        store._cache.set("x", {"a": 1})


# -- the writer lease ------------------------------------------------------------------------------------------

def test_one_lease_at_a_time_with_rising_epochs(store):
    first, second = store.lease("w1", ttl_s=5), store.lease("w2", ttl_s=5)
    assert first.acquire() and first.epoch == 1
    assert not second.acquire() and second.epoch is None
    assert store.lease("w3", 5).holder().owner == "w1"
    assert first.renew()
    first.release()
    assert store.lease("w3", 5).holder() is None
    assert second.acquire() and second.epoch == 2
    assert not first.renew()
    second.release()
    assert first.acquire(floor=41) and first.epoch == 42  # a floor keeps epochs rising after a wiped store


def test_a_deposed_writer_is_refused_by_the_store(store):
    from core.lease import LeaseLost

    old, new = store.lease("old", ttl_s=5), store.lease("new", ttl_s=5)
    writer = Store.__new__(Store)
    writer.__dict__.update(store.__dict__)
    writer._corrupt = set()
    assert old.acquire()
    writer.fence = old
    writer.put_account(new_snapshot(1, False), 1)
    assert store.account(1)["epoch"] == 1
    # The lease changes hands behind the old writer's back (expiry on Redis, a lost lock file on files).
    if store.kind == "redis":
        store._redis.delete("lb:lease")
    else:
        import os
        os.remove(old.path)
    assert new.acquire(floor=1) and new.epoch == 2  # (the worker passes the highest epoch it saw as the floor)
    with pytest.raises(LeaseLost):
        writer.put_account(new_snapshot(1, False), 2)
    with pytest.raises(LeaseLost):
        writer.put_status({"mode": "ws"})
    assert store.head() == 1 and store.status() is None  # nothing of the refused writes landed
    writer.fence = new
    writer.put_account(new_snapshot(1, False), 2)
    assert store.account(1)["epoch"] == 2 and store.head() == 2


def test_redis_lease_expires_when_not_renewed(redis_url, tmp_path):
    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path), "REDIS_URL": redis_url}))
    store._redis.delete("lb:lease")
    holder, waiting = store.lease("a", ttl_s=0.3), store.lease("b", ttl_s=0.3)
    assert holder.acquire()
    assert not waiting.acquire()
    assert wait_for(waiting.acquire, 3, "the unrenewed lease to expire", interval=0.05)
    assert not holder.renew()


def test_file_lease_is_released_by_a_killed_holder_and_recreates_its_directory(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    directory = tmp_path / "store"
    code = ("import sys, time; from core.lease import FileLease; "
            f"lease = FileLease({str(directory)!r}, 'child'); assert lease.acquire(); print('held', flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, cwd=os.getcwd())
    try:
        assert child.stdout.readline().strip() == b"held"
        from core.lease import FileLease
        lease = FileLease(str(directory), "me")
        assert not lease.acquire()  # non-blocking: returns at once while the child holds it
        assert lease.holder().owner == "child"
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        assert lease.acquire() and lease.epoch == 2  # the kernel released the killed holder's lock
    finally:
        child.kill()
        child.wait()
    import shutil
    shutil.rmtree(directory)
    assert not lease.renew()  # the directory (and the lock file) is gone: the lease cannot be proven
    assert lease.acquire() and lease.epoch == 1  # re-taken: directory recreated (epoch floor is the worker's job)
    assert (directory.stat().st_mode & 0o777) == 0o700


def test_probe_tells_a_deleted_directory(tmp_path):
    import shutil

    from core.store import StoreError

    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    store.probe()
    shutil.rmtree(tmp_path / "store")
    with pytest.raises(StoreError):
        store.probe()
