"""`worker_down` alerts, evaluated in the web (docs/alerts.md#worker-down): a dead worker cannot report itself.

Each web process runs one watcher (from the app's creation under gunicorn's gevent worker; else from its first
request): every
ALERTS_TICK_S it reads the worker's heartbeat from the store and feeds the evaluator's `worker_down` rules
(core/alerts/evaluate.py, the same logic and cooldown as every other condition). What fires goes to the outbox in
the history database, and one sender per destination delivers it with the worker's schedule and signing
(core/alerts/sending.py).

Exactly one message per down episode, however many web processes watch and however often they restart:
- the alert id is derived from the episode, not from the clock: the store's change `head`, which only a worker
  moves and which stays put while none runs (the status record itself expires 120 s after the last heartbeat);
- the outbox keeps one row per (id, destination): a second process, or a restarted one, inserts nothing new;
- each attempt is claimed first (a compare-and-set on the row, AlertOutbox.claim): of the senders that read the
  same row (every web process's, and the worker's once it is back), one sends it.
A restarted watcher restores each rule's last firing from the outbox, so the cooldown holds across restarts.
The standby worker does not watch: while it waits, the active worker beats; once it takes over, it beats itself.

gevent: delivery uses requests (and apprise), cooperative under gunicorn's gevent worker, which monkey-patches
the process before the app is built (gunicorn.conf.py's worker class derives from it). Store reads are
sub-millisecond; outbox I/O goes through HistoryDB.offload.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event

from app.status import worker_view
from core.alerts.config import AlertSettings
from core.alerts.evaluate import SERVICE, Alert, Evaluator
from core.alerts.outbox import DELIVERED, AlertOutbox
from core.alerts.rules import AlertRules
from core.alerts.sending import DB_RETRY_S, Attempt, deliver, rows_for
from core.history.db import DB_ERRORS
from core.snapshot import now_ms
from core.store import Store

log = logging.getLogger(__name__)


class WorkerDownWatch:
    def __init__(self, store: Store, settings: AlertSettings, outbox: Callable[[], AlertOutbox]) -> None:
        self.store = store
        self.settings = settings
        self._outbox = outbox  # built on first use, in the greenlet (the database is opened after gunicorn's fork)
        rules = tuple(r for r in settings.rules.rules if r.when == "worker_down")
        self.rule_names = frozenset(r.name for r in rules)
        self.evaluator = Evaluator(AlertRules(rules, settings.rules.destinations), group_ms=0)
        self.destinations = sorted({name for rule in rules for name in rule.to})
        self.queued: list[Alert] = []
        self.silent_s: float | None = None     # as of the last check (None: the worker beats, or not known yet)
        self._last_beat: int | None = None      # the newest heartbeat_at this process read
        self._missing_since: int | None = None  # no status record ever read: since when this process has seen that
        self._restored = False
        self._outbox_failing = False
        self._stop = gevent.event.Event()
        self._wake = {name: gevent.event.Event() for name in self.destinations}
        self._greenlets: list[gevent.Greenlet] = []

    @property
    def enabled(self) -> bool:
        return bool(self.rule_names)

    def ensure_started(self) -> None:
        if self.enabled and not self._greenlets:
            self._greenlets = [gevent.spawn(self.run)]
            self._greenlets += [gevent.spawn(self.sender, name) for name in self.destinations]

    def stop(self) -> None:
        self._stop.set()
        for greenlet in self._greenlets:
            greenlet.kill(block=False)

    # -- watching -----------------------------------------------------------------------------------------------
    def check(self, now: int) -> list[Alert]:
        """Read the heartbeat and evaluate. Raises the store's errors: an unreachable store tells nothing about the
        worker (that is `store_down`, logged by app/ready.py), so the caller skips the tick."""
        status = self.store.status()
        episode = self.store.head()
        view = worker_view(status, now)
        if status is not None:
            self._last_beat, self._missing_since = int(status.get("heartbeat_at") or 0), None
        if view["up"]:
            self.silent_s = None
        elif self._last_beat is not None:
            # The record (a stale one, or gone since: it expires 120 s after the last heartbeat) says when.
            self.silent_s = max(0, now - self._last_beat) / 1000
        else:
            # No worker seen by this process at all: silent at least since it noticed.
            self._missing_since = self._missing_since or now
            self.silent_s = (now - self._missing_since) / 1000
        values: dict[str, Any] = {"last_heartbeat_at": self._last_beat, "pid": view["pid"]}
        return self.evaluator.worker_down(self.silent_s, now, episode, values)

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._restore()
            except DB_ERRORS:
                pass  # not created by the worker yet, or away: the episode id still keeps one message
            try:
                self.queued += self.check(now_ms())
            except Exception as exc:  # noqa: BLE001 - the store is away: nothing is known, try again next tick
                log.debug("worker_down watch: store unreadable: %s", type(exc).__name__)
            try:
                self._write()
                self._outbox_failing = False
            except DB_ERRORS as exc:
                if not self._outbox_failing:  # once per outage: it is retried every tick
                    log.warning("worker_down watch: the alerts outbox is unavailable (%s); retrying",
                                type(exc).__name__)
                self._outbox_failing = True
                self._stop.wait(DB_RETRY_S)
            self._stop.wait(self.settings.tick_s)

    def _restore(self) -> None:
        """Once: each rule's last firing from the outbox, so a restarted process keeps the cooldown."""
        if self._restored:
            return
        for rule, at in self._outbox().last_fired().items():
            if rule in self.rule_names:
                self.evaluator.restore(rule, SERVICE, None, at)
        self._restored = True

    def _write(self) -> None:
        if not self.queued:
            return
        outbox = self._outbox()
        rows = [row for alert in self.queued for row in rows_for(alert, None, self.settings.public_url)]
        outbox.add(rows)  # the same id from another process (or from before a restart) adds nothing
        # Every watching process logs this; the outbox holds one row per id and destination whoever wrote first.
        log.warning("worker_down: no worker heartbeat for %.0f s: alert %s (web pid %d)", self.silent_s or 0,
                    ", ".join(sorted({a.id for a in self.queued})), os.getpid())
        self.queued.clear()
        for event in self._wake.values():
            event.set()

    # -- delivering ---------------------------------------------------------------------------------------------
    def sender(self, destination: str) -> None:
        """This rule kind's rows of one destination, oldest first (in order per rule). Other rules' rows are the
        worker's to send: they wait for it, and do not hold a worker_down alert back."""
        def done(result: Attempt) -> None:
            if result.status != DELIVERED:
                log.warning("worker_down alert to %s not delivered: %s", destination, result.outcome.error)

        deliver(self._outbox, self.settings.rules.destinations[destination], self.settings,
                wake=self._wake[destination], stop=self._stop, idle_s=max(DB_RETRY_S, self.settings.tick_s),
                done=done, rules=self.rule_names, who="worker_down watch")
