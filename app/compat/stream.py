"""`/stream`: Lighter's WebSocket protocol on top of the web's hub (one store watcher per process) and transport.

A `LighterClient` is a kind of hub client. The hub offers every client the same `Outgoing` item per change; a
Lighter client ignores the /ws bytes in it and builds Lighter frames from its typed snapshot, each built and encoded
once per change and frame type for all Lighter clients of the process (`Encoder`). The hub's heartbeat becomes
Lighter's app-level `{"type":"ping"}`; its resync snapshots become `subscribed/*` frames; its status is not sent.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import orjson

from app.compat import frames
from app.metrics import STREAM_ROUTE
from app.ws import transport
from app.ws.clients import Client, Connection, Outgoing, Riders
from core.snapshot import Snapshot

if TYPE_CHECKING:
    from app.metrics import Metrics

log = logging.getLogger(__name__)
KEEP_CHANGES = 512  # changes kept per process: far more than can be in flight between clients


def encode(frame: dict[str, Any]) -> bytes:
    return transport.frame_text(orjson.dumps(frame).decode())


class LighterChange:
    """One change of one account as Lighter clients see it; each frame is built and encoded at most once.

    `prev` is the account's snapshot just before this change (None: unknown, so only full frames are possible).
    """

    def __init__(self, snapshot: Snapshot, prev: Snapshot | None) -> None:
        self.snapshot = snapshot
        self.prev = prev
        self.seq: int = snapshot.get("seq", 0)
        self.prev_seq: int | None = None if prev is None else prev.get("seq", 0)
        self._frames: dict[tuple[str, str], bytes | None] = {}

    def frame(self, name: str, kind: str) -> bytes | None:
        key = (name, kind)
        if key not in self._frames:
            built = frames.build(name, kind, self.snapshot, self.prev if kind == "update" else None)
            self._frames[key] = None if built is None else encode(built)
        return self._frames[key]


class Encoder:
    """Per process: turns each change into a LighterChange once and chains it to the account's previous one.

    The hub offers a change only to clients that want its account, so the chain is exact only while some Lighter
    client watches the account: `watch`/`unwatch` count subscriptions, and a chain restarts from nothing (full
    frames) when the count leaves zero. This does not rely on the snapshot's `prev_seq`.
    """

    def __init__(self) -> None:
        self._changes: OrderedDict[int, LighterChange] = OrderedDict()
        self._latest: dict[int, Snapshot] = {}
        self._watchers: dict[int, int] = {}

    def watch(self, account: int) -> None:
        if self._watchers.get(account, 0) == 0:
            self._latest.pop(account, None)  # nobody followed it meanwhile: what we remember may be old
        self._watchers[account] = self._watchers.get(account, 0) + 1

    def unwatch(self, account: int) -> None:
        left = self._watchers.get(account, 0) - 1
        if left > 0:
            self._watchers[account] = left
        else:
            self._watchers.pop(account, None)
            self._latest.pop(account, None)

    def seed(self, account: int, snapshot: Snapshot) -> None:
        """A snapshot a subscriber just read from the store starts the chain if no change has yet."""
        self._latest.setdefault(account, snapshot)

    def restart(self, account: int, snapshot: Snapshot) -> None:
        """The hub resynced (feed gap, store outage or reset, where seqs may restart): chain from its snapshot."""
        if self._watchers.get(account):
            self._latest[account] = snapshot

    def change(self, item: Outgoing) -> LighterChange:
        # The hub offers one item per change to every client: the snapshot's identity, not the seq alone, marks a
        # hit (a seq may come again after a store reset with other data).
        seq, snapshot = item.seq, item.snapshot
        cached = self._changes.get(seq)
        if cached is not None and cached.snapshot is snapshot:
            return cached
        account = item.account
        latest = self._latest.get(account)
        newer = latest is None or latest.get("seq", 0) < seq
        change = LighterChange(snapshot, latest if newer else None)
        if newer:
            self._latest[account] = snapshot
        self._changes[seq] = change
        while len(self._changes) > KEEP_CHANGES:
            self._changes.popitem(last=False)
        return change


class LighterClient(Client):
    """Subscriptions are (channel, account) pairs, each with the seq its client's state is at (None: not yet)."""

    route = STREAM_ROUTE

    def __init__(self, conn: Connection, queue_size: int, metrics: Metrics, close_grace_s: float,
                 encoder: Encoder) -> None:
        super().__init__(conn, queue_size, metrics, close_grace_s)
        self.encoder = encoder
        self.channels: dict[tuple[str, int], int | None] = {}
        self.watched: set[int] = set()  # the accounts of `channels`
        self.accounts = self.watched
        self.holding = False  # we never use the hub's sync(): subscriptions are answered by `subscribe` below

    def push(self, frame: dict[str, Any] | bytes) -> None:
        """Send one Lighter frame (a dict, or frame bytes already encoded)."""
        self.send(encode(frame) if isinstance(frame, dict) else frame)

    # -- what the hub calls ------------------------------------------------------------------------------------
    def wants(self, account: int) -> bool:
        return account in self.watched

    def offer(self, item: Outgoing, riders: Riders | None = None) -> None:
        """One change in feed order: an update where our state is at `prev_seq`, else a full `subscribed` frame."""
        if riders is not None:
            self.ride(riders)
        if self.closing is not None:
            return
        account, seq = item.account, item.seq
        mine = [(name, last) for (name, acc), last in self.channels.items() if acc == account]
        if not mine:
            return
        change = self.encoder.change(item)
        for name, last in mine:
            if last is not None and seq <= last:
                continue  # already sent (our subscribe read a newer snapshot than the hub had delivered)
            # A delta only applies to the state it was computed from; anything else gets the full state.
            kind = "update" if last is not None and change.prev_seq == last else "subscribed"
            self._emit(name, account, change.seq, change.frame(name, kind), kind)

    def offer_many(self, items: list[Outgoing], riders: Riders | None = None) -> None:
        if riders is not None:
            self.ride(riders)
        for item in items:
            if item.account in self.watched:
                self.offer(item)

    def ride(self, riders: Riders) -> None:
        """The hub's frames for everyone: a heartbeat becomes Lighter's ping; the /ws status is not for us."""
        if riders.heartbeat:
            self.push(frames.ping())

    def resync(self, items: list[Outgoing]) -> None:
        """Fresh snapshots after a gap or an outage: a full frame on every channel of the account."""
        for item in items:
            account = item.account
            if account not in self.watched:
                continue
            self.encoder.restart(account, item.snapshot)
            change = LighterChange(item.snapshot, None)
            for (name, acc) in list(self.channels):
                if acc == account:
                    self._emit(name, account, change.seq, change.frame(name, "subscribed"))

    def _emit(self, name: str, account: int, seq: int, frame: bytes | None, kind: str = "subscribed") -> None:
        if (name, account) not in self.channels:
            return
        if frame is None:
            # An empty update means the client's state is already that of `seq`; no data for a full frame means
            # it has nothing yet, and its first real frame must be `subscribed`.
            if kind == "update":
                self.channels[(name, account)] = seq
            return
        self.channels[(name, account)] = seq
        self.push(frame)

    # -- what the client asks ----------------------------------------------------------------------------------
    def watch(self, name: str, account: int) -> None:
        """Register a channel before reading the store, so changes delivered during the read are not lost."""
        self.channels[(name, account)] = None
        self.watched.add(account)
        self.encoder.watch(account)

    def subscribe(self, name: str, account: int, snapshot: Snapshot | None) -> None:
        """Answer a watched channel with `snapshot`, the account as read from the store (None: no data yet)."""
        key = (name, account)
        if key not in self.channels or snapshot is None:
            return
        self.encoder.seed(account, snapshot)
        last = self.channels[key]
        seq = snapshot.get("seq", 0)
        if last is None or seq > last:  # the hub may have delivered a newer change while we read the store
            self._emit(name, account, seq, LighterChange(snapshot, None).frame(name, "subscribed"))

    def unsubscribe(self, name: str, account: int, quiet: bool = False) -> bool:
        if (name, account) not in self.channels:
            return False
        del self.channels[(name, account)]
        self.watched.clear()
        self.watched.update(acc for (_, acc) in self.channels)
        self.encoder.unwatch(account)
        if not quiet:
            self.push(frames.unsubscribed(name, account))
        return True

    def forget(self) -> None:
        """The connection ended: release every subscription (the encoder stops chaining unwatched accounts)."""
        for (_, account) in list(self.channels):
            self.encoder.unwatch(account)
        self.channels.clear()
        self.watched.clear()
