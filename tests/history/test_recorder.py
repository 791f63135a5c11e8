"""The worker's history recorder against real databases: rows derived and written; the database down, locked,
read-only or full → rows wait in the bounded outbox and are written once it works; past the bound, drops counted."""
from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from core.history.config import HistorySettings
from core.history.db import HistoryDB
from core.history.schema import PORTFOLIO
from core.snapshot import Snapshot, now_ms
from tests.history.snapshots import ACCOUNT, order, position, snap, trade
from worker.history.recorder import HistoryRecorder


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(db: HistoryDB, **overrides: Any) -> tuple[HistoryRecorder, Clock, list[tuple[str, str]]]:
    clock, errors = Clock(), []
    settings = HistorySettings(sample_s=3600, flush_every_s=0.01, **overrides)
    recorder = HistoryRecorder(settings, db, lambda where, message: errors.append((where, message)), clock)
    return recorder, clock, errors


BASE_MS = now_ms() - 60_000  # recent: the recorder's retention deletes fills older than 90 days


def trades(first: int, last: int) -> list[dict[str, Any]]:
    return [trade(i, BASE_MS + i) for i in range(last, first - 1, -1)]


def fills_in(db: HistoryDB, account: int = ACCOUNT) -> list[int]:
    return sorted(r["trade_id"] for r in db.page("fills", account, 0, 2**62, 1000, None))


def test_snapshots_become_fills_events_and_samples(history_db: HistoryDB) -> None:
    recorder, _, errors = make(history_db)
    recorder.seed([snap(positions=[position(0, "1")], orders=[order(901, "1")], trades=[])])
    recorder.offer([snap(positions=[position(0, "2")], orders=[], trades=trades(1, 3))])
    recorder.step()
    assert fills_in(history_db) == [1, 2, 3]
    assert [e["kind"] for e in history_db.page("position_events", ACCOUNT, 0, 2**62, 10, None)] == ["increase"]
    assert [e["kind"] for e in history_db.page("order_events", ACCOUNT, 0, 2**62, 10, None)] == ["filled"]
    # The periodic sample (first step) and the one on the fill, for the account and the portfolio.
    assert history_db.equity_buckets(ACCOUNT, 0, 2**62, 2**61)[0]["last"] == "1000.000000"
    assert history_db.equity_buckets(PORTFOLIO, 0, 2**62, 2**61)[0]["last"] == "1000.000000"
    status = recorder.status()
    assert (status["healthy"], status["backlog_rows"], status["dropped_rows"], errors) == (True, 0, 0, [])


@contextmanager
def sqlite_pragma(db: HistoryDB, pragma: str) -> Iterator[None]:
    """The connection runs `pragma` while the block lasts (a fresh connection on entry and on exit)."""
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(pragma)
    event.listen(db.engine, "connect", on_connect)
    db.reset()
    try:
        yield
    finally:
        event.remove(db.engine, "connect", on_connect)
        db.reset()


@contextmanager
def sqlite_locked(db: HistoryDB) -> Iterator[None]:
    """Another process's write lock held, and our busy timeout short, so the write fails as "locked"."""
    path = db.engine.url.database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with sqlite_pragma(db, "PRAGMA busy_timeout=50"):
            yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@contextmanager
def sqlite_gone(db: HistoryDB) -> Iterator[None]:
    """The database's directory replaced by a file: every open fails, as with an unmounted volume."""
    path = Path(db.engine.url.database or "")
    backup = path.parent.with_name(path.parent.name + ".bak")
    shutil.move(path.parent, backup)
    path.parent.write_text("not a directory")
    db.reset()  # the open connection would still reach the moved file
    try:
        yield
    finally:
        os.remove(path.parent)
        shutil.move(backup, path.parent)


SQLITE_FAULTS: dict[str, Callable[[HistoryDB], Any]] = {
    "read-only": lambda db: sqlite_pragma(db, "PRAGMA query_only=ON"),
    "full": lambda db: sqlite_pragma(db, "PRAGMA max_page_count=1"),  # i.e. no page beyond the current ones
    "locked": sqlite_locked,
    "down": sqlite_gone,
}


LAST = 300


def _outage_then_recovery(db: HistoryDB, fault: Callable[[], Any]) -> None:
    recorder, clock, errors = make(db)
    recorder.offer([snap(trades=trades(1, 3))])
    recorder.step()
    assert fills_in(db) == [1, 2, 3]
    with fault():
        recorder.offer([snap(trades=trades(1, LAST))])  # more rows than a page's free space ("full")
        recorder.step()
        status = recorder.status()
        assert status["healthy"] is False and status["backlog_rows"] >= 3 and status["last_error"]
        assert errors and errors[-1][0] == "history"
        clock.now += 60  # past the retry delay: still failing, still queued
        recorder.step()
        assert recorder.status()["backlog_rows"] >= 3
    clock.now += 60
    recorder.step()
    assert fills_in(db) == list(range(1, LAST + 1))
    status = recorder.status()
    assert (status["healthy"], status["backlog_rows"], status["dropped_rows"], status["last_error"]) == \
        (True, 0, 0, None)


@pytest.mark.parametrize("kind", sorted(SQLITE_FAULTS))
def test_sqlite_faults_queue_rows_and_flush_when_back(kind: str, tmp_path: Path) -> None:
    db = HistoryDB(f"sqlite:///{tmp_path / 'db' / 'history.sqlite3'}")
    db.migrate()
    _outage_then_recovery(db, lambda: SQLITE_FAULTS[kind](db))


def test_postgres_read_only_then_writable(postgres_url: str) -> None:
    db = HistoryDB(postgres_url)
    db.migrate()
    name = db.engine.url.database

    @contextmanager
    def read_only() -> Iterator[None]:
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        db.engine.dispose()  # the setting applies to new sessions
        try:
            yield
        finally:
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("SET default_transaction_read_only = off")
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = off')
            db.engine.dispose()
    _outage_then_recovery(db, read_only)


@pytest.mark.slow
def test_postgres_server_down_then_back(postgres_server: Any, postgres_url: str) -> None:
    db = HistoryDB(postgres_url)
    db.migrate()

    @contextmanager
    def down() -> Iterator[None]:
        postgres_server.stop(kill=True)
        try:
            yield
        finally:
            postgres_server.start()
    _outage_then_recovery(db, down)


def test_past_the_bound_the_oldest_rows_are_dropped_and_reported(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    db = HistoryDB(f"sqlite:///{tmp_path / 'db' / 'history.sqlite3'}")
    db.migrate()
    recorder, clock, _ = make(db, outbox_rows=4)
    recorder.previous[ACCOUNT] = snap(trades=[])
    with sqlite_pragma(db, "PRAGMA query_only=ON"), caplog.at_level(logging.ERROR):
        recorder.offer([snap(trades=trades(1, 10), equity=None)])
        recorder.step()
    assert recorder.status()["dropped_rows"] == 6 and recorder.status()["backlog_rows"] == 4
    assert any("history outbox full" in r.getMessage() for r in caplog.records)
    clock.now += 60
    recorder.step()
    assert fills_in(db) == [7, 8, 9, 10]  # the newest four; the six oldest were dropped, and counted


def test_the_byte_bound_holds_too() -> None:
    from worker.history.outbox import Outbox

    box = Outbox(max_rows=1000, max_bytes=100)
    for i in range(10):
        box.put("fills", {"trade_id": i, "pad": "x" * 20})
    assert box.bytes <= 100 and len(box) == 2 and box.dropped == 8
    batch = box.take(10)
    assert [row["trade_id"] for _, row, _ in batch] == [8, 9] and box.bytes == 0
    box.restore(batch)
    assert len(box) == 2 and box.bytes == sum(size for _, _, size in batch)


def test_paused_records_nothing(history_db: HistoryDB) -> None:
    recorder, _, _ = make(history_db)
    recorder.pause()
    recorder.offer([snap(trades=trades(1, 2))])
    assert len(recorder._pending) == 0
    recorder.resume()
    assert recorder.resumed.is_set()
    recorder.offer([snap(trades=trades(1, 2))])
    recorder.step()
    assert fills_in(history_db) == [1, 2]


def test_seeded_previous_state_turns_offline_changes_into_events(history_db: HistoryDB) -> None:
    recorder, _, _ = make(history_db)
    stored: Snapshot = snap(positions=[position(0, "1")])
    recorder.seed([stored])
    recorder.offer([stored])  # the resumed snapshot, re-offered at start: nothing happened
    recorder.step()
    assert history_db.page("position_events", ACCOUNT, 0, 2**62, 10, None) == []
    recorder.offer([snap(positions=[])])
    recorder.step()
    assert [e["kind"] for e in history_db.page("position_events", ACCOUNT, 0, 2**62, 10, None)] == ["close"]


def test_no_periodic_sample_from_data_upstream_has_not_confirmed_lately(history_db: HistoryDB) -> None:
    recorder, _, _ = make(history_db)
    old = snap(equity="5.0")
    old["as_of"] = now_ms() - 3_600_000  # a previous run's snapshot, an hour old
    recorder.seed([old, snap(equity="7.0", account=ACCOUNT + 1)])
    recorder.step()
    assert history_db.equity_buckets(ACCOUNT, 0, 2**62, 2**61) == []
    assert history_db.equity_buckets(ACCOUNT + 1, 0, 2**62, 2**61)[0]["last"] == "7.0"
