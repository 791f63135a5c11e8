"""Alerts in the worker (docs/alerts.md): the evaluator fed by the sink, the outbox writer, one sender per
destination.

How it plugs in (worker/main.py): `attach(rt)` builds the AlertWorker, hooks it to the sink
(`rt.sink.on_alerts`), sets `rt.alerts` and returns the greenlets to run. The writer lease gates it with
`rt.alerts.pause()` / `rt.alerts.resume()`: paused, nothing is evaluated or sent (the standby's senders stay idle;
the outbox rows wait in the database for whichever worker is active). `resume(took_over=True)` when the lease was
taken from another worker sends `standby_took_over`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import orjson

from core.alerts.config import AlertSettings
from core.alerts.deliver import warm_up
from core.alerts.evaluate import Alert, Evaluator
from core.alerts.outbox import DELIVERED, PENDING, AlertOutbox
from core.alerts.sending import DB_RETRY_S, Attempt, deliver, rows_for
from core.history.db import DB_ERRORS, HistoryDB
from core.snapshot import Snapshot, now_ms
from worker.runtime import Runtime
from worker.states import WsState

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 3600.0  # delivered and failed rows older than HISTORY_RETENTION_DAYS are deleted this often
MAX_QUEUED = 10_000  # alerts held in memory while the database is away; past this the oldest are dropped (logged)


class AlertWorker:
    def __init__(self, rt: Runtime, settings: AlertSettings, db: HistoryDB) -> None:
        self.rt = rt
        self.settings = settings
        self.evaluator = Evaluator(settings.rules, int(settings.group_s * 1000))
        self.outbox = AlertOutbox(db)
        self.db = db
        self.queued: list[Alert] = []
        self.dropped = 0
        self.active = True
        self.resumed = gevent.event.Event()
        self._wake = gevent.event.Event()
        self._send_wake = {name: gevent.event.Event() for name in settings.rules.destinations}
        self._rate_limited = 0
        self.fired = 0
        self.delivered = 0

    # -- the writer lease ---------------------------------------------------------------------------------------
    def pause(self) -> None:
        self.active = False

    def resume(self, took_over: bool = False) -> None:
        """`took_over`: the lease was taken from another worker (a standby became active), which is itself an
        alert (`standby_took_over`)."""
        self.active = True
        if took_over:
            self._queue(self.evaluator.service("standby_took_over", True, now_ms(), {"pid": self.rt.pid}))
            self.evaluator.service("standby_took_over", False, now_ms(), {})  # an event: clear at once
        self.resumed.set()
        self._wake.set()
        for event in self._send_wake.values():
            event.set()

    # -- fed by the sink (must not block) -----------------------------------------------------------------------
    def offer(self, snapshots: list[Snapshot]) -> None:
        if not self.active:
            self.evaluator.seed(snapshots)  # keep the baseline current: a resume compares with now, not with then
            return
        self._queue(self.evaluator.offer(snapshots, now_ms()))
        if self.evaluator.next_due() is not None:
            self._wake.set()  # the run loop sleeps until the open group closes

    def _queue(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        self.queued += alerts
        self.fired += len(alerts)
        if len(self.queued) > MAX_QUEUED:
            extra = len(self.queued) - MAX_QUEUED
            self.dropped += extra
            del self.queued[:extra]
            log.warning("alerts: %d alert(s) dropped: the outbox database is away and %d are queued", extra,
                        MAX_QUEUED)
        self._wake.set()

    # -- greenlets ----------------------------------------------------------------------------------------------
    def run(self, stop: gevent.event.Event) -> None:
        """Evaluate time-based conditions, close burst groups, and move fired alerts into the outbox."""
        migrated = False
        pruned_at = self.rt.clock()
        while not stop.is_set():
            due = self.evaluator.next_due()
            wait = self.settings.tick_s if due is None else max(0.0, min(self.settings.tick_s, (due - now_ms()) / 1000))
            self._wake.wait(timeout=wait)
            self._wake.clear()
            if not self.active:
                continue
            self._queue(self.evaluator.tick(now_ms()))
            self._queue(self._service(now_ms()))
            prune = migrated and self.rt.clock() - pruned_at >= PRUNE_EVERY_S
            # Migrated at once, not at the first alert: a web process's worker_down watcher writes to the outbox
            # too, and the worker it watches may die before anything fired.
            if migrated and not self.queued and not prune:
                continue
            try:
                if not migrated:
                    self.db.migrate()
                    migrated = True
                self._write()
                if prune:
                    pruned_at = self.rt.clock()
                    days = self.rt.settings.history.retention_days
                    self.outbox.prune(now_ms() - int(days * 86_400_000))
            except DB_ERRORS as exc:
                self.rt.record_error("alerts:outbox", f"database unavailable: {type(exc).__name__}")
                stop.wait(DB_RETRY_S)
                self._wake.set()

    def _service(self, now: int) -> list[Alert]:
        """upstream_blocked holds while 429s keep coming (any new one since the last check) or while an egress's
        WebSocket is refused (Lighter's geo-block: readonly or REST only)."""
        limited = sum(e.rate_limited for e in self.rt.egresses)
        fresh = limited - self._rate_limited
        self._rate_limited = limited
        refused = sorted(e.id for e in self.rt.egresses if e.ws.state in (WsState.READONLY, WsState.REST_ONLY))
        return self.evaluator.service("upstream_blocked", fresh > 0 or bool(refused), now,
                                      {"rate_limited": fresh, "ws_refused_egresses": refused})

    def _write(self) -> None:
        if not self.queued:
            return
        rows: list[dict[str, Any]] = []
        for alert in self.queued:
            account = self.rt.accounts.get(alert.account)
            rows += rows_for(alert, account.name if account else None, self.settings.public_url)
        self.outbox.add(rows)
        self.queued.clear()
        for event in self._send_wake.values():
            event.set()

    def sender(self, destination: str, stop: gevent.event.Event) -> None:
        """Delivers a destination's rows one at a time, oldest first (in order per rule), retrying with backoff;
        idle while paused (the standby's)."""
        def done(result: Attempt) -> None:
            if result.status == DELIVERED:
                self.delivered += 1
            elif result.status == PENDING:
                self.rt.record_error(f"alerts:{destination}", result.outcome.error or "failed")

        deliver(lambda: self.outbox, self.settings.rules.destinations[destination], self.settings,
                wake=self._send_wake[destination], stop=stop, idle_s=DB_RETRY_S, done=done,
                active=lambda: self.active)


def attach(rt: Runtime, db: HistoryDB | None = None) -> list[tuple[str, Callable[..., Any], Any]]:
    settings = rt.settings.alerts
    if not settings.enabled:
        return []
    if db is None:
        db = rt.history.db if rt.history is not None else HistoryDB(rt.settings.history.database_url.reveal())
    HistoryDB.load_migrations()  # the outbox's tables are migrated too: on the main thread, now (see there)
    if any(d.kind == "apprise" for d in settings.rules.destinations.values()):
        warm_up()  # before the hub runs anything else: apprise's plugin loading is CPU-bound
    worker = AlertWorker(rt, settings, db)
    worker.evaluator.seed(_copy(state.snapshot) for state in rt.states.values())
    rt.sink.on_alerts = worker.offer
    rt.alerts = worker
    log.info("alerts: %d rule(s), %d destination(s)", len(settings.rules.rules), len(settings.rules.destinations))
    jobs: list[tuple[str, Callable[..., Any], Any]] = [("alerts", worker.run, rt.stop)]
    for name in settings.rules.destinations:
        jobs.append((f"alerts:{name}", lambda stop, name=name: worker.sender(name, stop), rt.stop))
    return jobs


def _copy(snapshot: Snapshot) -> Snapshot:
    copied: Snapshot = orjson.loads(orjson.dumps(snapshot))
    return copied
