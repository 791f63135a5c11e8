"""The per-process fan-out hub: the client registry, and every change encoded once and written to each client.

The hub is the store watcher's subscriber (app/feed/watcher.py): it is handed each batch of changes in feed order
(`on_changes`), each resync (`on_resync`: fresh snapshots marked `resync`), a tick after each wake-up of the
watcher (`on_tick`: status and heartbeat riders) and store outages (`on_outage`). It never reads the change feed
itself. Each change is encoded once, full and (while some client wants them) as a patch, and the same bytes go to
every subscribed /ws client; Lighter clients (app/compat/stream.py) build their frames from the typed snapshot.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from app.feed.mirror import Mirror
from app.metrics import Metrics
from app.status import StatusCache, unreachable_view
from app.ws import messages, transport
from app.ws.clients import Client, Outgoing, Riders
from app.ws.codes import CloseCode
from core.snapshot import Snapshot
from core.store import Change, Store
from core.tuning import WebTuning

if TYPE_CHECKING:
    from app.ws.portfolio import PortfolioFeed

log = logging.getLogger(__name__)
# An encoded snapshot frame is shared by the clients that sync within this long: a connect burst encodes each
# account once, not once per client, and the ages it carries are at most this much older than at send time.
SNAPSHOT_FRAME_REUSE_S = 0.5


class Hub:
    def __init__(self, store: Store, status: StatusCache, ttl_s: float, metrics: Metrics, tuning: WebTuning,
                 max_clients: int) -> None:
        self.store = store            # read by the initial sync of a client (replay or snapshots), never followed
        self.status = status
        self.ttl_s = ttl_s
        self.metrics = metrics
        self.queue_size = tuning.ws_queue_frames
        self.backlog_bytes = tuning.ws_backlog_bytes
        self.close_grace_s = tuning.ws_close_grace_s
        self.heartbeat_s = tuning.ws_heartbeat_s
        self.status_every_s = tuning.status_every_s
        self.status_refresh_s = tuning.status_refresh_s
        self.max_clients = max_clients
        self.clients: set[Client] = set()
        self.seq = 0                  # the feed position of the last change (or resync) handed to clients
        self.patch_clients = 0
        self._delivered: dict[int, Snapshot] = {}  # account -> the version clients were last handed
        self._last_status: Any = None
        self._last_status_at = float("-inf")
        self._status_at = float("-inf")          # the last status read: the first tick reads one
        # The status frame last built, handed to each client that syncs for up to `status_every_s` (as old as the
        # status it is read from may be anyway): a burst of new clients costs one status read, not one each (4 store
        # round trips, half the CPU of a connection before this).
        self._status_frame: bytes | None = None
        self._status_frame_at = float("-inf")
        self._status_reading = False
        self._heartbeat_at = time.monotonic()
        # Status and heartbeat frames waiting to go out in front of the next change, in the same write: a pass
        # over every client costs ~10 µs each, and a change arriving during a pass of its own would wait for it.
        self._riders: list[bytes] = []
        self._heartbeat_riding = False
        self._snapshot_frames: dict[tuple[int, bool], tuple[Snapshot, float, bytes]] = {}
        self.portfolio: PortfolioFeed | None = None  # the `portfolio` subscription (app/ws/portfolio.py)

    # -- clients -----------------------------------------------------------------------------------------------
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

    def sync(self, client: Client, accounts: list[int] | None, since: int | None,
             mirror: Mirror | None = None, lead: bytes = b"", tail: bytes = b"") -> None:
        """Queue what `client` needs for `accounts` (None: its subscription): a replay from `since` when the feed
        still has it, else fresh snapshots (marked resync when the client asked to resume). The watcher must be
        started first (its start position read), so no change falls between this read and the feed. Snapshots
        come from `mirror` when the watcher trusts it (no store round trip per client), else from the store.
        `lead` and `tail` (a frame each, or nothing) go in front of and after them, in the same write."""
        client.holding = True
        initial: list[Outgoing] = []
        try:
            initial = self._initial(client, accounts, since, mirror)
        finally:
            client.release(initial, lead, tail)

    def _initial(self, client: Client, accounts: list[int] | None, since: int | None,
                 mirror: Mirror | None) -> list[Outgoing]:
        if accounts is None:
            accounts = mirror.tracked() if mirror is not None else self.store.tracked()
        wanted = [a for a in accounts if client.wants(a)]
        if since is not None:
            changes = self.store.changes_since(since)
            if changes is not None:
                mine = [c for c in changes if c.snapshot["account_index"] in wanted]
                # A replay longer than the queue would only overflow it: snapshots are cheaper.
                if len(mine) <= self.queue_size // 2:
                    replay = [Outgoing(c.snapshot["account_index"], c.seq,
                                       transport.frame_text(messages.update(c, self.ttl_s)), c.snapshot)
                              for c in mine]
                    if sum(len(item.frame) for item in replay) <= self.backlog_bytes // 2:
                        return replay
        read = mirror.account if mirror is not None else self.store.account
        snapshots = [s for s in (read(a) for a in wanted) if s is not None]
        return [self._snapshot(s, resync=since is not None, reuse=True) for s in snapshots]

    def _snapshot(self, snapshot: Snapshot, resync: bool, reuse: bool = False) -> Outgoing:
        account = snapshot["account_index"]
        now = time.monotonic()
        cached = self._snapshot_frames.get((account, resync)) if reuse else None
        if cached is not None and cached[0] is snapshot and now - cached[1] < SNAPSHOT_FRAME_REUSE_S:
            frame = cached[2]
        else:
            frame = transport.frame_text(messages.account_message("snapshot", snapshot, self.ttl_s, resync))
            if reuse:
                if len(self._snapshot_frames) > 4 * len(self._delivered) + 64:
                    self._snapshot_frames.clear()  # accounts no longer tracked: start over
                self._snapshot_frames[account, resync] = (snapshot, now, frame)
        return Outgoing(account, snapshot.get("seq", 0), frame, snapshot)

    def status_frame(self) -> bytes:
        """The status for a client that just synced. The store may have gone since its snapshots were read: then
        it says so (the watcher pushes the rest), rather than the client being dropped for a status."""
        now = time.monotonic()
        frame = self._status_frame
        # While one client's read is in flight (it yields on the store), the others take the previous frame: a
        # burst of connects must not read the status once per client.
        if frame is not None and (now - self._status_frame_at < self.status_every_s or self._status_reading):
            return frame
        self._status_reading = True
        try:
            view = self.status.view(clients=len(self.clients))
        except Exception:  # noqa: BLE001 - logged by the watcher, which sees the same outage
            self._status_frame = None
            return transport.frame_text(messages.status(unreachable_view(len(self.clients))))
        finally:
            self._status_reading = False
        self._status_frame, self._status_frame_at = transport.frame_text(messages.status(view)), now
        return self._status_frame

    # -- the feed (app.feed.watcher.Subscriber) ----------------------------------------------------------------
    def on_start(self, seq: int, snapshots: list[Snapshot]) -> None:
        """The watcher starts at `seq`, where the store holds `snapshots`: patches of the first changes are
        computed against them."""
        self.seq = seq
        self._delivered = {s["account_index"]: s for s in snapshots}

    def on_changes(self, batch: list[Change]) -> None:
        """One batch of changes, in feed order (never empty)."""
        self._deliver(batch)

    def _deliver(self, batch: list[Change]) -> None:
        items = [self._encode(change) for change in batch]
        riders = self._take_riders()
        if len(items) == 1:
            item = items[0]
            account = item.account
            for client in list(self.clients):
                if client.wants(account):
                    client.offer(item, riders)
                elif riders is not None:
                    client.ride(riders)
        else:
            # Changes that piled up while we were busy: one write per client for all of them, so falling behind
            # costs fewer syscalls per change, and catching up is faster.
            for client in list(self.clients):
                client.offer_many(items, riders)
        self.seq = items[-1].seq
        self.metrics.changes.inc(len(items))
        if self.portfolio is not None:
            self.portfolio.on_changes()

    def _encode(self, change: Change) -> Outgoing:
        """Both forms of one change, each encoded once: the full update, and a patch against the account as
        clients were last handed it, when that is the version at the change's prev_seq."""
        snapshot = change.snapshot
        account = snapshot["account_index"]
        previous = self._delivered.get(account)
        self._delivered[account] = snapshot
        patch = messages.patch_update(change, previous, self.ttl_s) if self.patch_clients else None
        # Only freshness moved: protocol-2 clients get a few hundred bytes instead of the account.
        confirm = messages.confirmation(change, previous, self.ttl_s)
        return Outgoing(account, change.seq, transport.frame_text(messages.update(change, self.ttl_s)), snapshot,
                        None if patch is None else transport.frame_text(patch), snapshot.get("prev_seq"),
                        None if confirm is None else transport.frame_text(confirm))

    def on_resync(self, seq: int, snapshots: list[Snapshot]) -> None:
        """The feed had a gap or the store came back: fresh snapshots for every client, each encoded once."""
        self.seq = seq
        self._delivered = {s["account_index"]: s for s in snapshots}  # seqs may have restarted: patch from these
        items = [self._snapshot(s, resync=True) for s in snapshots]
        for client in list(self.clients):
            client.resync(items)
        self.metrics.resyncs.inc()

    def on_tick(self, quiet: bool) -> None:
        """After each wake-up of the watcher (at least every `status_every_s`): queue a status when it is due and
        a heartbeat every `heartbeat_s`; they ride with the next change, or go now when the wake-up was `quiet`
        (no change to ride with). Reads the status from the store: raises while it is down."""
        now = time.monotonic()
        if now - self._status_at >= self.status_every_s:
            self._status_at = now
            self._push_status()
        if now - self._heartbeat_at >= self.heartbeat_s:
            self._heartbeat_at = now
            self._riders.append(transport.frame_text(messages.heartbeat(self.seq)))
            self._heartbeat_riding = True
        if quiet:
            riders = self._take_riders()
            if riders is not None:
                self._broadcast(riders)
        if self.portfolio is not None:
            self.portfolio.on_tick()

    def on_outage(self) -> None:
        """The store is unreachable: say so to everyone now; the next status read after it is back is pushed."""
        self._last_status = None
        self._status_at = float("-inf")
        self._status_frame = None
        self._heartbeat_at = time.monotonic()
        frame = transport.frame_text(messages.status(unreachable_view(len(self.clients))))
        self._broadcast(Riders(frame, 1, False))

    def _push_status(self) -> None:
        """Push the status when its state changes, else refresh it every `status_refresh_s`.

        Its clocks and counters change every second, and every push is one more send per client that a change
        arriving meanwhile waits behind (~10 ms per 1,000 clients). Clients extrapolate ages themselves.
        """
        try:
            view = self.status.view(clients=len(self.clients), fresh=True)
        except Exception:
            self._status_frame = None  # the store is down: new clients build their own (which says so)
            raise
        self._status_frame, self._status_frame_at = transport.frame_text(messages.status(view)), time.monotonic()
        frame = self._status_frame
        state, now = _status_state(view), time.monotonic()
        if state == self._last_status and now - self._last_status_at < self.status_refresh_s:
            return
        self._last_status, self._last_status_at = state, now
        self._riders.append(frame)

    def _take_riders(self) -> Riders | None:
        if not self._riders:
            return None
        frames, self._riders = self._riders, []
        riders = Riders(frames[0] if len(frames) == 1 else b"".join(frames), len(frames), self._heartbeat_riding)
        self._heartbeat_riding = False
        return riders

    def _broadcast(self, riders: Riders) -> None:
        for client in list(self.clients):
            client.ride(riders)

    # -- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self, code: CloseCode = CloseCode.GOING_AWAY, reason: str = "server shutting down") -> None:
        """Close every client politely (gunicorn's SIGTERM) so nothing is cut mid-frame."""
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
