"""The worker's side of the writer lease (worker/tenure.py): waiting as a standby without blocking the gevent
hub, taking over, and the tuning that bounds it."""
from __future__ import annotations

import fcntl
import os

import gevent
import pytest

from core.env import SettingsError
from core.settings import from_env
from core.store import Store
from core.tuning import worker_from_env
from tests.waiting import wait_for
from worker.runtime import Runtime
from worker.tenure import wait_as_standby


def _runtime(tmp_path, **tuning: str) -> Runtime:
    env = {"CACHE_DIR": str(tmp_path / "store"), "WORKER_STANDBY_POLL_S": "0.05", **tuning}
    settings = from_env(env)
    return Runtime(settings, worker_from_env(env), Store.from_settings(settings))


def test_a_standby_waits_without_blocking_the_hub_and_takes_over_when_the_lock_goes(tmp_path) -> None:
    rt = _runtime(tmp_path)
    lease = rt.store.lease("standby", 1.0)
    # Another process's lock, as flock sees it: a separate open file description holding LOCK_EX.
    os.makedirs(tmp_path / "store", exist_ok=True)
    holder = os.open(tmp_path / "store" / "writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(holder, b"7:other:1:abc\n")
    fcntl.flock(holder, fcntl.LOCK_EX)
    ticks = []

    def ticker() -> None:  # would stall if waiting blocked the hub (a blocking flock would)
        while len(ticks) < 20:
            ticks.append(1)
            gevent.sleep(0.01)

    waiting = gevent.spawn(wait_as_standby, rt, lease)
    gevent.spawn(ticker).join(timeout=5)
    assert len(ticks) == 20 and not waiting.ready() and rt.role == "standby"
    record = rt.store.standby()
    assert record is not None and record["pid"] == os.getpid() and record["active_epoch"] == 7
    os.close(holder)  # the holder dies: the kernel drops its lock
    assert waiting.get(timeout=5) is True
    assert rt.role == "active" and rt.epoch == 8 and rt.store.fence is lease


def test_a_standby_told_to_stop_returns_false(tmp_path) -> None:
    rt = _runtime(tmp_path)
    other = rt.store.lease("other", 1.0)
    assert other.acquire()
    waiting = gevent.spawn(wait_as_standby, rt, rt.store.lease("me", 1.0))
    # Told to stop once it is really waiting (its standby record is out), not before it started.
    wait_for(rt.store.standby, 5, "the standby's record", interval=0.01, idle=gevent.sleep)
    rt.stop.set()
    assert waiting.get(timeout=5) is False and rt.store.fence is None


@pytest.mark.parametrize("env", [{"WORKER_LEASE_RENEW_S": "3"}, {"WORKER_LEASE_RENEW_S": "0"},
                                 {"WORKER_LEASE_TTL_S": "0.4"}, {"WORKER_STANDBY_POLL_S": "0"}])
def test_lease_tuning_is_checked(env) -> None:
    with pytest.raises(SettingsError, match="WORKER_"):
        worker_from_env(env)


def test_taking_over_a_wiped_store_never_reuses_a_seq_or_an_epoch(tmp_path) -> None:
    import shutil

    from core.snapshot import new_snapshot
    from core.store import FEED_SIZE

    rt = _runtime(tmp_path, Lighter_1_main_Account_Index="1")  # public-only: no key needed
    writer = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    held = writer.lease("other", 1.0)
    assert held.acquire(floor=4) and held.epoch == 5
    writer.fence = held
    writer.put_accounts([(new_snapshot(1, False), 100)])
    writer.put_status({"epoch": 5, "store": {"seq": 100}})
    waiting = gevent.spawn(wait_as_standby, rt, rt.store.lease("me", 1.0))
    wait_for(lambda: rt.seq_seen >= 100, 5, "the standby seeing seq 100", interval=0.02, idle=gevent.sleep)
    assert rt.seq_seen == 100 and rt.epoch_seen == 5 and not waiting.ready()
    shutil.rmtree(tmp_path / "store")  # the store is wiped (and the holder's lock file with it)
    assert waiting.get(timeout=5) is True
    assert rt.epoch == 6  # above the epoch seen, though the wiped lock file no longer knew it
    rt.begin_tenure()
    assert rt.sink.write_once(confirmations=True)
    # A whole ring above what the last writer may have used after our last look: no seq names two bodies.
    assert rt.store.head() == rt.store.account(1)["seq"] == 100 + FEED_SIZE + 1
    assert rt.store.account(1)["epoch"] == 6 and rt.store.tracked() == [1]
