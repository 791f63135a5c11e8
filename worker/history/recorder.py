"""The history writer: snapshots in, rows derived (pure, core/history/events.py), queued, written in batches.

`offer` is all the store path pays (an append); derivation and database I/O happen in this greenlet, the I/O off
the hub (core/history/db.py). The database being down, locked, read-only or full never reaches the live
broadcast: rows wait in the bounded outbox and are written, in order, once it works again.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gevent
import gevent.event

from core.backoff import Retry
from core.history import events
from core.history.config import HistorySettings
from core.history.db import DB_ERRORS, HistoryDB
from core.history.schema import PORTFOLIO
from core.snapshot import Row, Snapshot, now_ms
from worker.history.outbox import Outbox

log = logging.getLogger(__name__)
BATCH_ROWS = 5_000          # rows per transaction
RETENTION_EVERY_S = 3600.0  # retention and downsampling run this often
FINAL_FLUSH_S = 1.5         # on stop, what is queued gets this long to reach the database
DAY_MS = 86_400_000
SAMPLE_MAX_AGE_MS = 60_000  # a periodic sample needs data upstream confirmed at most this long ago
YIELD_EVERY = 20            # snapshots derived between two yields to the hub


class HistoryRecorder:
    def __init__(self, settings: HistorySettings, db: HistoryDB, on_error: Callable[[str, str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.db = db
        self._on_error = on_error
        self._clock = clock
        self.outbox = Outbox(settings.outbox_rows, settings.outbox_bytes)
        self.previous: dict[int, Snapshot] = {}
        self.latest: dict[int, Row] = {}         # the newest equity sample per account
        self._pending: deque[Snapshot] = deque()
        self._wake = gevent.event.Event()
        self._retry = Retry(clock, 0.5, cap=30.0, healthy_after=10.0)
        self.active = True                       # False: another worker holds the writer role (pause/resume)
        self.migrated = False
        self.healthy = False
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None
        self.db_stats: dict[str, Any] | None = None
        self.resumed = gevent.event.Event()      # set on resume(): the backfill runs again at once
        self.backfilled_at_ms: int | None = None  # when a backfill pass last finished (every keyed account tried)
        self._next_try = 0.0
        self._next_sample = 0.0
        self._next_retention = 0.0
        self._next_stats = 0.0
        self._downsampled_until = 0

    # -- the hooks ----------------------------------------------------------------------------------------------
    def seed(self, snapshots: Iterable[Snapshot]) -> None:
        """What the previous run stored: changes since then are events (a position closed while we were down)."""
        for snapshot in snapshots:
            self.previous[snapshot["account_index"]] = snapshot

    def offer(self, snapshots: Sequence[Snapshot]) -> None:
        """Called by the sink with each batch of detached snapshots it writes. O(1) per snapshot."""
        if self.active:
            self._pending.extend(snapshots)
            self._wake.set()

    def pause(self) -> None:
        """Stop recording (the writer lease went to another worker): nothing is derived or written."""
        self.active = False
        self._pending.clear()

    def resume(self) -> None:
        """Record again (this worker took the writer lease); the backfill fills what happened meanwhile."""
        self.active = True
        self.resumed.set()
        self._wake.set()

    # -- derivation (pure parts in core/history/events.py) ------------------------------------------------------
    def process(self, now: int) -> int:
        """Derive rows from every pending snapshot; returns the fills found."""
        found = 0
        done = 0
        while self._pending:
            done += 1
            if done % YIELD_EVERY == 0:
                gevent.sleep(0)  # a long backlog must not hold the hub: upstream frames go first
            snapshot = self._pending.popleft()
            index = snapshot["account_index"]
            derived = events.derive(index, self.previous.get(index), snapshot, now)
            for table, rows in derived.tables().items():
                for row in rows:
                    self.outbox.put(table, row)
            self.previous[index] = snapshot
            sample = events.equity_sample(index, snapshot, now)
            if sample is not None:
                self.latest[index] = sample
                if derived.fills:  # a sample on every fill, beside the periodic ones
                    self._put_sample(sample, now)
            found += len(derived.fills)
        return found

    def sample_all(self, now: int) -> None:
        for index, snapshot in self.previous.items():
            if now - (snapshot.get("as_of") or 0) > SAMPLE_MAX_AGE_MS:
                continue  # upstream has not confirmed this account lately (or it is a previous run's): no sample
            sample = events.equity_sample(index, snapshot, now)
            if sample is not None:
                self.latest[index] = sample
                self.outbox.put("equity_samples", sample)
        self._put_portfolio(now)

    def _put_sample(self, sample: Row, now: int) -> None:
        self.outbox.put("equity_samples", sample)
        self._put_portfolio(now)

    def _put_portfolio(self, now: int) -> None:
        total = events.portfolio_sample(self.latest.values(), PORTFOLIO, now)
        if total is not None:
            self.outbox.put("equity_samples", total)

    def put_fills(self, rows: Iterable[Row]) -> None:
        """Fills from the backfill (the database skips those it holds)."""
        for row in rows:
            self.outbox.put("fills", row)
        self._wake.set()

    # -- database -----------------------------------------------------------------------------------------------
    def flush(self) -> bool:
        """Write what is queued, oldest first, in batches. False if the database failed (rows stay queued)."""
        if self._clock() < self._next_try:
            return False
        try:
            if not self.migrated:
                self.db.migrate()
                self.migrated = True
            while len(self.outbox):
                batch = self.outbox.take(BATCH_ROWS)
                grouped: dict[str, list[Row]] = defaultdict(list)
                for table, row, _size in batch:
                    grouped[table].append(row)
                try:
                    self.db.write(grouped)
                except BaseException:
                    self.outbox.restore(batch)
                    raise
                self.written += len(batch)
        except DB_ERRORS as exc:
            self._failed(exc)
            return False
        if not self.healthy:
            log.info("history database writable (%s); backlog written", self.settings.redacted_url)
        self.healthy = True
        self.last_error = None
        self._retry.up()
        return True

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        if self.healthy or self.failures == 1:
            log.warning("history database write failed, rows wait in the outbox (%d queued): %s",
                        len(self.outbox), message)
        self.healthy = False
        self.last_error = message
        self._on_error("history", message)
        self._next_try = self._clock() + self._retry.next_delay()
        try:
            self.db.reset()  # a fresh connection for the retry
        except DB_ERRORS:
            pass

    def housekeeping(self, now: int) -> None:
        """Retention/downsampling hourly, stats every HISTORY_STATS_S; only while the database works."""
        if not self.healthy:
            return
        try:
            if self._clock() >= self._next_retention:
                self._downsampled_until = self.db.retain(
                    now, int(self.settings.retention_days * DAY_MS),
                    int(self.settings.downsample_after_days * DAY_MS), self._downsampled_until)
                self._next_retention = self._clock() + RETENTION_EVERY_S
            if self._clock() >= self._next_stats:
                self.db_stats = self.db.stats()
                self._next_stats = self._clock() + self.settings.stats_s
        except DB_ERRORS as exc:
            self._failed(exc)

    # -- the greenlet ---------------------------------------------------------------------------------------------
    def run(self, stop: gevent.event.Event) -> None:
        self._next_sample = self._clock()
        try:
            while not stop.is_set():
                timeout = max(0.01, min(self.settings.flush_every_s, self._next_sample - self._clock()))
                self._wake.wait(timeout)
                self._wake.clear()
                if not self.active:
                    continue
                self.step()
                # Batch: rows arriving within flush_every_s go in one transaction.
                stop.wait(self.settings.flush_every_s if len(self.outbox) < BATCH_ROWS else 0)
        finally:
            self._final_flush()

    def step(self) -> None:
        now = now_ms()
        self.process(now)
        if self._clock() >= self._next_sample:
            self.sample_all(now)
            period = self.settings.sample_s
            self._next_sample += period * max(1, int((self._clock() - self._next_sample) // period) + 1)
        if len(self.outbox) or not self.migrated:
            self.flush()
        self.housekeeping(now)

    def _final_flush(self) -> None:
        if not self.active:
            return
        try:
            with gevent.Timeout(FINAL_FLUSH_S):
                self.process(now_ms())
                self.flush()
        except gevent.Timeout:
            log.warning("history: %d rows still queued at stop (the backfill refetches missed fills)",
                        len(self.outbox))

    def status(self) -> dict[str, Any]:
        """The status record's `history` field (docs/history.md)."""
        stats = self.db_stats or {}
        return {"database": self.db.dialect, "writing": self.active, "healthy": self.healthy,
                "backlog_rows": len(self.outbox), "backlog_bytes": self.outbox.bytes,
                "dropped_rows": self.outbox.dropped, "written_rows": self.written, "failures": self.failures,
                "last_error": self.last_error, "size_bytes": stats.get("size_bytes"), "rows": stats.get("rows"),
                "backfilled_at_ms": self.backfilled_at_ms}
