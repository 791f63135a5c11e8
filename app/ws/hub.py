"""The per-process fan-out hub: one watcher greenlet follows the store's change feed and feeds every client.

Each change is encoded once and the same frame bytes are written to each subscribed client's socket. A gap in
the feed (a slow watcher, a store reset) or a store outage ends in a resync: fresh snapshots marked `resync`.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from app.feed.mirror import Mirror
from app.status import StatusCache, unreachable_view
from app.ws import messages, transport
from app.ws.clients import Client, Outgoing
from core.backoff import backoff
from core.store import Store

log = logging.getLogger(__name__)


class Hub:
    def __init__(self, store: Store, status: StatusCache, ttl_s: float, metrics: Any, queue_size: int = 256,
                 heartbeat_s: float = 20.0, status_every_s: float = 1.0, status_refresh_s: float = 5.0,
                 max_clients: int = 10000) -> None:
        self.store = store
        self.status = status
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.status_every_s = status_every_s
        self.max_clients = max_clients
        self.clients: set[Client] = set()
        self.seq = 0
        self.stopping = Event()
        self._watcher: gevent.Greenlet | None = None
        self._starting = Semaphore()
        self._last_status: Any = None
        self._last_status_at = float("-inf")
        self.status_refresh_s = status_refresh_s
        self._needs_resync = False
        self.mirror = Mirror(store)  # what REST serves from while in_sync(); kept by the watcher
        self._delivered: dict[int, dict[str, Any]] = {}  # account -> its last change this watcher delivered
        # Status and heartbeat frames waiting to go out in front of the next change, in the same write: a pass
        # over every client costs ~10 µs each, and a change arriving during a pass of its own would wait for it.
        self._riders: list[bytes] = []
        self.patch_clients = 0

    # -- clients -----------------------------------------------------------------------------------------------
    def ensure_started(self) -> None:
        """Start the watcher in this process on first use (after gunicorn's fork; we never preload).

        The start position is read here, before the caller syncs its client: a spawned greenlet may not run until
        much later (local Redis replies without yielding), and changes in between would otherwise be skipped.
        """
        if self._running():
            return
        # Reading head yields to other greenlets: without the lock, every client connecting meanwhile started a
        # watcher of its own (each one re-sending every change and status), and a client syncing before head was
        # read could miss the changes in between.
        with self._starting:
            if self._running():
                return
            try:
                self.seq = self.store.head()
                self.mirror.reset()  # after head: changes in between arrive from the feed, newer seq wins
            except Exception:  # noqa: BLE001 - the store is down: the watcher retries and resyncs everyone
                log.warning("hub: store unavailable at start", exc_info=True)
                self._needs_resync = True
            self._watcher = gevent.spawn(self._run)
            self._watcher.link_exception(lambda g: log.error("hub watcher died: %r", g.exception))

    def _running(self) -> bool:
        return self._watcher is not None and not self._watcher.dead

    def in_sync(self) -> bool:
        """The watcher runs and owes no resync: what it applied to `mirror` is the store's state."""
        watcher = self._watcher
        return watcher is not None and not watcher.dead and not self._needs_resync and not self.stopping.is_set()

    def full(self) -> bool:
        """No room for another WebSocket: past this, descriptors (shared with HTTP) would run out first."""
        return len(self.clients) >= self.max_clients

    def register(self, client: Client) -> None:
        """Fan out to `client` from now on, until its connection ends."""
        self.clients.add(client)
        self.metrics.clients.set(len(self.clients))
        client.when_closed(lambda: self.unregister(client))

    def unregister(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.patch_clients -= client.patches
        self.metrics.clients.set(len(self.clients))

    def send_patches(self, client: Client) -> None:
        """`client` (registered) takes patch updates; the hub encodes patches only while someone does."""
        if not client.patches:
            client.patches = True
            self.patch_clients += client in self.clients

    def sync(self, client: Client, accounts: list[int] | None, since: int | None) -> None:
        """Queue what `client` needs for `accounts` (None: its subscription): a replay from `since` when the feed
        still has it, else fresh snapshots (marked resync when the client asked to resume)."""
        client.holding = True
        initial: list[Outgoing] = []
        try:
            initial = self._initial(client, accounts, since)
        finally:
            client.release(initial)

    def _initial(self, client: Client, accounts: list[int] | None, since: int | None) -> list[Outgoing]:
        wanted = [a for a in (accounts if accounts is not None else self.store.tracked()) if client.wants(a)]
        if since is not None:
            changes = self.store.changes_since(since)
            if changes is not None:
                mine = [c for c in changes if c.snapshot["account_index"] in wanted]
                # A replay longer than the queue would only overflow it: snapshots are cheaper.
                if len(mine) <= self.queue_size // 2:
                    return [Outgoing(c.snapshot["account_index"], c.seq,
                                     transport.frame_text(messages.update(c, self.ttl_s))) for c in mine]
        snapshots = [s for s in (self.store.account(a) for a in wanted) if s is not None]
        return [Outgoing(s["account_index"], s.get("seq", 0), transport.frame_text(
                    messages.account_message("snapshot", s, self.ttl_s, resync=since is not None)))
                for s in snapshots]

    def status_frame(self) -> bytes:
        """The status for a client that just synced. The store may have gone since its snapshots were read: then
        it says so (the watcher pushes the rest), rather than the client being dropped for a status."""
        try:
            view = self.status.view(clients=len(self.clients))
        except Exception:  # noqa: BLE001 - logged by the watcher, which sees the same outage
            view = unreachable_view(len(self.clients))
        return transport.frame_text(messages.status(view))

    # -- the watcher -------------------------------------------------------------------------------------------
    def _run(self) -> None:
        delays = backoff(initial=0.5, cap=10.0)
        while not self.stopping.is_set():
            try:
                if self._needs_resync:
                    head = self.store.head()
                    self._resync_all()  # changes after `head` also come as updates; clients drop duplicates
                    self.seq, self._needs_resync = head, False
                    log.info("hub: store reachable at seq %d; clients resynced", head)
                    delays = backoff(initial=0.5, cap=10.0)
                self._follow()
            except Exception:  # noqa: BLE001 - any store failure: log, back off, retry, then resync everyone
                delay = next(delays)
                log.warning("hub: store unavailable; retrying in %.1f s", delay, exc_info=True)
                self._needs_resync = True
                self._last_status = None
                self._broadcast(transport.frame_text(messages.status(unreachable_view(len(self.clients)))))
                self.stopping.wait(delay)

    def _follow(self) -> None:
        last_heartbeat = time.monotonic()
        last_status = 0.0
        for batch in self.store.follow(self.seq, self.stopping, timeout=self.status_every_s):
            if batch is None:
                self.seq = self.store.head()
                self._resync_all()
            elif batch:
                self._deliver(batch)
            now = time.monotonic()
            if now - last_status >= self.status_every_s:
                last_status = now
                self._push_status()
            if now - last_heartbeat >= self.heartbeat_s:
                last_heartbeat = now
                self._riders.append(transport.frame_text(messages.heartbeat(self.seq)))
            if not batch and self._riders:  # a quiet tick (at least every status_every_s): no change to ride with
                self._broadcast(*self._take_riders())

    def _deliver(self, batch: list[Any]) -> None:
        items = [self._encode(change) for change in batch]
        riders = self._take_riders()
        if len(items) == 1:
            item = items[0]
            for client in list(self.clients):
                if client.wants(item.account):
                    client.offer(item, riders)
                elif riders:
                    client.send_all(riders)
        else:
            # Changes that piled up while we were busy: one write per client for all of them, so falling behind
            # costs fewer syscalls per change, and catching up is faster.
            for client in list(self.clients):
                client.offer_many(items, riders)
        self.seq = items[-1].seq
        self.metrics.changes.inc(len(items))

    def _encode(self, change: Any) -> Outgoing:
        """Both forms of one change, each encoded once: the full update, and a patch against the account as this
        watcher last delivered it (else as the mirror holds it), when that is the version at the change's prev_seq.

        Not the mirror alone: REST requests refresh it from the account keys, which can be ahead of the feed.
        """
        account = change.snapshot["account_index"]
        previous = self._delivered.get(account) or self.mirror.latest(account)
        self._delivered[account] = change.snapshot
        self.mirror.apply([change])
        patch = messages.patch_update(change, previous, self.ttl_s) if self.patch_clients else None
        return Outgoing(account, change.seq, transport.frame_text(messages.update(change, self.ttl_s)),
                        None if patch is None else transport.frame_text(patch), change.snapshot.get("prev_seq"))

    def _resync_all(self) -> None:
        """Fresh snapshots for every client, each account encoded once."""
        self.mirror.reset()
        self._delivered = {}  # after a store reset, seqs start again: patch only against what is read now
        frames = {}
        for snapshot in self.store.accounts():
            account = snapshot["account_index"]
            frames[account] = (snapshot.get("seq", 0),
                               transport.frame_text(messages.account_message("snapshot", snapshot, self.ttl_s, True)))
        for client in list(self.clients):
            if not client.holding:
                # Forget what was sent before: after a store reset seqs start again, and an account with no
                # snapshot yet must still get its next update.
                client.last_sent = {}
            for account, (seq, frame) in frames.items():
                if not client.wants(account):
                    continue
                if client.holding:  # its own sync is in flight: let release() order this after it
                    client.pending.append(Outgoing(account, seq, frame))
                else:
                    client.last_sent[account] = seq
                    client.send(frame)
        self.metrics.resyncs.inc()

    def _push_status(self, force: bool = False) -> None:
        """Push the status when its state changes, else refresh it every `status_refresh_s`.

        Its clocks and counters change every second, and every push is one more send per client that a change
        arriving meanwhile waits behind (~10 ms per 1,000 clients). Clients extrapolate ages themselves.
        """
        view = self.status.view(clients=len(self.clients), fresh=True)
        state, now = _status_state(view), time.monotonic()
        if not force and state == self._last_status and now - self._last_status_at < self.status_refresh_s:
            return
        self._last_status, self._last_status_at = state, now
        self._riders.append(transport.frame_text(messages.status(view)))

    def _take_riders(self) -> tuple[bytes, ...]:
        riders, self._riders = tuple(self._riders), []
        return riders

    def _broadcast(self, *frames: bytes) -> None:
        for client in list(self.clients):
            client.send_all(frames)

    # -- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self, code: int = 1001, reason: str = "server shutting down") -> None:
        """Close every client politely (gunicorn's SIGTERM) so nothing is cut mid-frame."""
        self.stopping.set()
        for client in list(self.clients):
            client.close(code, reason)


def _status_state(view: dict[str, Any]) -> Any:
    """What in a status view is worth pushing at once: up/down, modes, stale flags, errors; not clocks, ages,
    request counters or the client count (those ride along with the periodic refresh)."""
    return (view["worker"].get("up"), view["store"], view.get("mode"), view.get("intervals"), view.get("upstream"),
            [(e.get("id"), (e.get("ws") or {}).get("state")) for e in view.get("egresses") or []],
            {key: (account.get("stale"), {name: (section.get("stale"), section.get("error"))
                                          for name, section in (account.get("sections") or {}).items()})
             for key, account in (view.get("accounts") or {}).items()},
            [(e.get("at"), e.get("where")) for e in view.get("errors") or []])
