"""The web's store watcher (app/feed/watcher.py) in-process on a real file store: a change from a new writer
epoch reaches the subscriber as a resync, never as a plain update."""
from __future__ import annotations

from typing import Any

import gevent

from app.feed.mirror import Mirror
from app.feed.watcher import Watcher
from core.settings import from_env
from core.snapshot import Snapshot, new_snapshot
from core.store import Change, Store
from tests.waiting import wait_for

# Waits that let the watcher greenlet run between checks.
YIELDING: dict[str, Any] = {"interval": 0.01, "idle": gevent.sleep}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_start(self, seq: int, snapshots: list[Snapshot]) -> None:
        self.events.append(("start", seq))

    def on_changes(self, batch: list[Change]) -> None:
        self.events += [("update", (c.seq, c.snapshot.get("epoch"))) for c in batch]

    def on_resync(self, seq: int, snapshots: list[Snapshot]) -> None:
        self.events.append(("resync", sorted(s.get("epoch") for s in snapshots)))

    def on_tick(self, quiet: bool) -> None:
        return None

    def on_outage(self) -> None:
        self.events.append(("outage", None))


def _writer(tmp_path: Any, owner: str) -> Store:
    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    lease = store.lease(owner, ttl_s=5)
    assert lease.acquire(floor=0)
    store.fence = lease
    return store


def test_a_new_writer_epoch_is_a_resync(tmp_path) -> None:
    first = _writer(tmp_path, "first")
    first.set_tracked([1, 2])
    first.put_accounts([(new_snapshot(1, False), 1), (new_snapshot(2, False), 2)])
    reader = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    recorder = Recorder()
    watcher = Watcher(reader, Mirror(reader, max_age_s=0.1), tick_s=0.1, subscriber=recorder)
    watcher.ensure_started()
    try:
        first.put_account(new_snapshot(1, False), 3)
        wait_for(lambda: ("update", (3, 1)) in recorder.events, 5, "the epoch-1 update", **YIELDING)
        assert first.fence is not None
        first.fence.release()  # a clean handover
        second = _writer(tmp_path, "second")
        assert second.fence is not None and second.fence.epoch == 2
        second.put_account(new_snapshot(2, False), 4)
        wait_for(lambda: any(e[0] == "resync" for e in recorder.events), 5, "a resync", **YIELDING)
        second.put_account(new_snapshot(1, False), 5)
        wait_for(lambda: ("update", (5, 2)) in recorder.events, 5, "the epoch-2 update", **YIELDING)
    finally:
        watcher.stop()
    assert ("update", (4, 2)) not in recorder.events  # the new writer's first change came as a resync
    resync = next(e for e in recorder.events if e[0] == "resync")
    assert resync == ("resync", [1, 2])  # the store as it is: account 1 still from epoch 1, account 2 from epoch 2
    assert watcher.epoch == 2
