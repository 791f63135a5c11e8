"""The one store watcher of a web process: follows the store's change feed, keeps the Mirror current, and hands
typed batches and resyncs to its subscriber (the hub).

Started lazily, once per process (after gunicorn's fork; we never preload), by whoever needs fresh data first: a
REST request (through `serving`) or a WebSocket client. A gap in the feed (a slow watcher, a store reset) or a store
outage ends in a resync: the mirror is reloaded and the subscriber gets the fresh snapshots. Until then
`in_sync()` is False and REST reads the store itself.

A change of writer is a resync too: every change carries the `epoch` (tenure) of the worker that wrote it, and a
batch from a new epoch is not applied as updates but answered with a resync, so clients see a takeover (or a
writer re-taking its lease after the store was wiped) as an explicit resync, never as a silent jump.
"""
from __future__ import annotations

import logging
from typing import Protocol

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from app.feed.mirror import Mirror
from core.backoff import backoff
from core.snapshot import Snapshot
from core.store import Change, Store

log = logging.getLogger(__name__)
# A store that comes back must reach /ws clients within 2 s (issue 14): retry at least every second. One read per
# retry per web process is nothing for the store.
RETRY_CAP_S = 1.0


class Subscriber(Protocol):
    """What the watcher hands on, in feed order, from its one greenlet (app.ws.hub.Hub implements it).

    A subscriber that raises is treated like a store failure: logged, backed off, then a resync.
    """

    def on_start(self, seq: int, snapshots: list[Snapshot]) -> None:
        """The watcher starts following after `seq`; `snapshots` is the store's state it starts from."""

    def on_changes(self, batch: list[Change]) -> None:
        """Changes in feed order, already applied to the mirror (never empty)."""

    def on_resync(self, seq: int, snapshots: list[Snapshot]) -> None:
        """A gap or an outage ended: the store holds `snapshots` at `seq`; what was handed on before may be gone."""

    def on_tick(self, quiet: bool) -> None:
        """After each wake-up (a batch, a resync, or at least every `tick_s`); `quiet`: there was no change."""

    def on_outage(self) -> None:
        """The store failed; a resync follows once it is back."""


class Watcher:
    """Follows `store` from the head it finds at start; `mirror` is what REST may serve while `in_sync()`."""

    def __init__(self, store: Store, mirror: Mirror, tick_s: float, subscriber: Subscriber) -> None:
        self.store = store
        self.mirror = mirror
        self.tick_s = tick_s
        self.subscriber = subscriber
        self.seq = 0                          # the feed position handed on last
        self.epoch: int | None = None         # the writer tenure of what was handed on last
        self.stopping = Event()
        self._greenlet: gevent.Greenlet | None = None
        self._starting = Semaphore()
        self._needs_resync = False

    # -- for requests ------------------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start following in this process on first use.

        The start position is read here, before the caller syncs its client: a spawned greenlet may not run until
        much later (local Redis replies without yielding), and changes in between would otherwise be skipped.
        """
        if self.running():
            return
        # Reading head yields to other greenlets: without the lock, every client connecting meanwhile started a
        # watcher of its own (each one re-sending every change and status), and a client syncing before head was
        # read could miss the changes in between.
        with self._starting:
            if self.running() or self.stopping.is_set():
                return
            try:
                self.seq = self.store.head()
                snapshots = self.mirror.reset()  # after head: changes in between arrive from the feed, newer wins
                self.epoch = _newest_epoch(snapshots)
                self.subscriber.on_start(self.seq, snapshots)
            except Exception:  # noqa: BLE001 - the store is down: the watcher retries and resyncs everyone
                log.warning("watcher: store unavailable at start", exc_info=True)
                self._needs_resync = True
            self._greenlet = gevent.spawn(self._run)
            self._greenlet.link_exception(lambda g: log.error("store watcher died: %r", g.exception))

    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    def in_sync(self) -> bool:
        """Following, and owing no resync: what was applied to the mirror is the store's state."""
        return self.running() and not self._needs_resync and not self.stopping.is_set()

    def serving(self) -> Mirror | None:
        """The mirror if REST may trust it now, else None (read the store). Starts the watcher: REST alone must
        keep the mirror current, not only WebSocket clients."""
        self.ensure_started()
        mirror = self.mirror
        if not (mirror.loaded and self.in_sync() and mirror.fresh()):
            return None
        return mirror

    def stop(self) -> None:
        """Stop following (SIGTERM): the greenlet ends at its next wake-up; REST reads the store from now on."""
        self.stopping.set()

    # -- the greenlet ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        delays = backoff(initial=0.5, cap=RETRY_CAP_S)
        while not self.stopping.is_set():
            try:
                if self._needs_resync:
                    self._resync(self.store.head())  # changes after it also come as updates; clients drop dups
                    self._needs_resync = False
                    log.info("watcher: store reachable at seq %d; clients resynced", self.seq)
                    delays = backoff(initial=0.5, cap=RETRY_CAP_S)
                self._follow()
            except Exception:  # noqa: BLE001 - any store failure: log, back off, retry, then resync everyone
                delay = next(delays)
                log.warning("watcher: store unavailable; retrying in %.1f s", delay, exc_info=True)
                self._needs_resync = True
                self.subscriber.on_outage()
                self.stopping.wait(delay)

    def _follow(self) -> None:
        for batch in self.store.follow(self.seq, self.stopping, timeout=self.tick_s):
            if batch is None:
                self._resync(self.store.head())
            elif self._new_writer(batch):
                log.info("watcher: writer changed (epoch %s -> %s); clients resynced", self.epoch,
                         _epoch(batch[-1].snapshot))
                self._resync(self.store.head())
            elif batch:
                self.mirror.apply(batch)
                self.seq = batch[-1].seq
                self.subscriber.on_changes(batch)
            self.subscriber.on_tick(quiet=not batch)

    def _new_writer(self, batch: list[Change]) -> bool:
        """True if the batch holds a change from another writer tenure than the one handed on so far."""
        epochs = [_epoch(c.snapshot) for c in batch]
        known = self.epoch
        if epochs:
            self.epoch = epochs[-1] if epochs[-1] is not None else known
        return known is not None and any(e is not None and e != known for e in epochs)

    def _resync(self, head: int) -> None:
        snapshots = self.mirror.reset()
        self.seq = head
        self.epoch = max(self.epoch or 0, _newest_epoch(snapshots) or 0) or None
        self.subscriber.on_resync(head, snapshots)


def _epoch(snapshot: Snapshot) -> int | None:
    """The writer tenure that wrote the snapshot (the store adds it; older writers did not)."""
    epoch = snapshot.get("epoch")
    return epoch if isinstance(epoch, int) else None


def _newest_epoch(snapshots: list[Snapshot]) -> int | None:
    return max((e for e in map(_epoch, snapshots) if e is not None), default=None)
