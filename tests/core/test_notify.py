"""The file store's push (core/notify.py): the follower learns of a write from inotify, not from polling head."""
from __future__ import annotations

import time

import pytest

import core.changes
import core.store
from core.notify import open_notifier
from core.settings import from_env
from core.snapshot import new_snapshot
from core.store import Store
from tests.core.test_store import Following

NEVER_POLLS = 60.0  # a poll period no test outlives: only a push can deliver in time


@pytest.fixture
def file_store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setattr(core.changes, "FILE_FALLBACK_POLL_S", NEVER_POLLS)
    settings = from_env({"CACHE_DIR": str(tmp_path / "store"), "WEB_FILE_POLL_S": "5"})
    return Store.from_settings(settings)


def test_a_write_reaches_the_follower_by_push(file_store: Store) -> None:
    with Following(file_store) as following:
        following.wait(lambda: following.batches)  # caught up before the writes
        for seq in range(1, 6):
            written = time.monotonic()
            file_store.put_accounts([(new_snapshot(7, False), seq)])
            following.wait(lambda s=seq: any(c.seq == s for c in following.changes()), timeout=NEVER_POLLS / 4)
            assert time.monotonic() - written < 1.0  # neither the fallback nor WEB_FILE_POLL_S (5 s)
    assert [c.seq for c in following.changes()] == [1, 2, 3, 4, 5]


def test_other_files_do_not_wake_it_and_head_does(file_store: Store, tmp_path) -> None:
    """Only `head`'s file counts: the status written every second, account keys and ring slots do not."""
    notifier = open_notifier(str(tmp_path / "store"), file_store._head_path())
    assert notifier is not None
    try:
        file_store.put_status({"mode": "ws"})
        assert notifier.wait(0.05) is False
        file_store.put_accounts([(new_snapshot(7, False), 1)])  # slots, the account, then head
        assert notifier.wait(5.0) is True
        assert notifier.wait(0.05) is False  # drained
    finally:
        notifier.close()


def test_without_inotify_the_follower_polls_head(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(core.store, "open_notifier", lambda directory, head: None)
    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store"), "WEB_FILE_POLL_S": "0.02"}))
    with Following(store) as following:
        following.wait(lambda: following.batches)
        store.put_accounts([(new_snapshot(7, False), 1)])
        following.wait(lambda: [c.seq for c in following.changes()] == [1])


def test_a_directory_that_cannot_be_watched_means_polling(tmp_path) -> None:
    assert open_notifier(str(tmp_path / "missing"), None) is None


def test_waiting_blocks_only_its_greenlet(file_store: Store, tmp_path) -> None:
    """gevent: a greenlet waiting for head leaves the hub free (another greenlet runs meanwhile)."""
    import gevent

    notifier = open_notifier(str(tmp_path / "store"), file_store._head_path())
    assert notifier is not None
    ticks: list[float] = []

    def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            gevent.sleep(0.01)

    def wait() -> float:
        assert notifier.wait(0.3) is False
        return time.monotonic()

    try:
        waiting = gevent.spawn(wait)
        other = gevent.spawn(ticker)
        gevent.joinall([waiting, other], timeout=5, raise_error=True)
        assert len(ticks) == 5 and ticks[-1] < waiting.value  # the ticker ran to its end while the wait went on
    finally:
        notifier.close()
