"""One connected /ws client: its subscription, what it was last sent, and the bound on what it may owe.

Frames go straight to the connection (`transport.Connection.write`: one non-blocking send, the rest waits in its
backlog as references to the bytes every client shares). A client whose backlog passes `backlog_bytes` bytes
(WEB_WS_BACKLOG_BYTES) is closed with 4008 instead of stalling anyone else or growing the process.
Client messages arrive from the event loop; they are handled one at a time, in order, by a greenlet that exists
only while there is something to handle, because handlers read the store and the event loop must never wait.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol

import gevent
from gevent.event import Event

from app.metrics import WS_ROUTE
from app.ws.codes import CloseCode
from core.snapshot import Snapshot

if TYPE_CHECKING:
    from app.metrics import Metrics

log = logging.getLogger(__name__)
MAX_INBOX = 64        # client messages waiting to be handled; more means a client flooding us


class Connection(Protocol):
    """What a client needs of its connection (app/ws/transport.Connection; tests/doubles.Recorder in tests)."""

    remote: str

    @property
    def backlog(self) -> int: ...  # bytes owed

    def write(self, data: bytes, *more: bytes) -> int: ...  # returns the bytes owed

    def drop_backlog(self) -> int: ...

    def close(self, code: int, reason: str, grace_s: float) -> None: ...

    def start(self, on_message: Callable[[str | bytes], None], on_closed: Callable[[], None]) -> None: ...


class Outgoing(NamedTuple):
    """One account message on its way to clients, encoded once for all of them. /ws clients write its bytes;
    Lighter clients (app/compat/stream.py) build their own frames from `snapshot`, the account at `seq`."""

    account: int
    seq: int
    frame: bytes                 # the full message (snapshot, or update carrying the whole account)
    snapshot: Snapshot
    patch: bytes | None = None   # the same update as a patch, valid only for a client holding `prev_seq`
    prev_seq: int | None = None
    confirm: bytes | None = None  # only freshness moved: the small `confirm` frame, for a client at `prev_seq`


class Riders(NamedTuple):
    """Frames for every client (status, heartbeat), joined once, riding in front of the next change."""

    data: bytes
    frame_count: int
    heartbeat: bool              # one of them is a heartbeat (Lighter clients answer it with their own ping)


class Client:
    """Subscription state plus the connection; `offer` is what the hub calls per change."""

    route = WS_ROUTE  # the metrics label of this kind of client

    def __init__(self, conn: Connection, queue_size: int, metrics: Metrics, close_grace_s: float,
                 accounts: set[int] | None = None, backlog_bytes: int = 1 << 20) -> None:
        self.conn = conn
        self.queue_size = queue_size  # changes held while the initial sync is read (and the longest replay)
        self.backlog_bytes = backlog_bytes
        self.sync_bytes = 0           # its latest initial sync, written at once: owed on top of the bound
        self.metrics = metrics
        self._tally = metrics.sent_tally(self.route)
        self.accounts = accounts      # None: every tracked account, including ones added later
        self.patches = False          # the client asked for patch updates (docs/websocket.md)
        self.confirm_full = False     # protocol 1 (or ?confirm=full): a confirmation is a full/patch update
        self.last_sent: dict[int, int] = {}
        self.holding = True           # live changes wait in `pending` until the initial sync is queued
        self.pending: list[Outgoing] = []
        self.closing: tuple[CloseCode, str] | None = None
        self.closed = Event()
        self.close_grace_s = close_grace_s
        self._inbox: deque[str | bytes] = deque()
        self._handler: Callable[[str | bytes], None] | None = None
        self._handling: gevent.Greenlet | None = None
        self._on_closed: list[Callable[[], None]] = []

    # -- called by the hub and the views (never block) ----------------------------------------------------------
    def wants(self, account: int) -> bool:
        return self.accounts is None or account in self.accounts

    def offer(self, item: Outgoing, riders: Riders | None = None) -> None:
        """A change for `item.account`, in feed order. Skips what this client already has (resync races).
        `riders`: frames for everyone (status, heartbeat) that go out first, in the same write."""
        if self.closing is not None:
            return
        if self.holding:
            if riders is not None:
                self.ride(riders)
            self.pending.append(item)
            if len(self.pending) > self.queue_size:
                self.overflow()
            return
        frame = self._frame(item)
        if frame is None:
            if riders is not None:
                self.ride(riders)
        elif riders is None:
            self.send(frame)
        else:
            self.send(riders.data, riders.frame_count + 1, frame)

    def _frame(self, item: Outgoing) -> bytes | None:
        """What to send this client for `item` (None: it has that already), remembering it as sent.

        A patch or a confirm only applies to the account as of `prev_seq`: anyone holding something else gets the
        full update.
        """
        last = self.last_sent.get(item.account, -1)
        if item.seq <= last:
            return None
        self.last_sent[item.account] = item.seq
        if last == item.prev_seq:
            if item.confirm is not None and not self.confirm_full:
                return item.confirm
            if self.patches and item.patch is not None:
                return item.patch
        return item.frame

    def offer_many(self, items: list[Outgoing], riders: Riders | None = None) -> None:
        """Several changes in feed order (after `riders`), written together (one syscall) when the client is live."""
        if self.closing is not None or self.holding:
            if riders is not None:
                self.ride(riders)
            for item in items:
                if self.wants(item.account):
                    self.offer(item)
            return
        frames = [frame for frame in (self._frame(item) for item in items if self.wants(item.account))
                  if frame is not None]
        if riders is not None:
            frames.insert(0, riders.data)
        if frames:
            self.send(frames[0], len(frames) + (riders.frame_count - 1 if riders is not None else 0), *frames[1:])

    def ride(self, riders: Riders) -> None:
        """Frames for everyone (status, heartbeat) with no change of this client's to ride with: one write."""
        self.send(riders.data, riders.frame_count)

    def resync(self, items: list[Outgoing]) -> None:
        """Fresh snapshots (marked resync) after a feed gap or a store outage, for the accounts this client wants,
        in one write. What was sent before is forgotten: after a store reset seqs start again, and an account with
        no snapshot yet must still get its next update. A client still syncing gets them after its own sync."""
        if self.holding:
            self.pending.extend(item for item in items if self.wants(item.account))
            return
        self.last_sent = {}
        frames = []
        for item in items:
            if self.wants(item.account):
                self.last_sent[item.account] = item.seq
                frames.append(item.frame)
        if frames:
            self.send(frames[0], len(frames), *frames[1:])

    def release(self, initial: list[Outgoing], lead: bytes = b"", tail: bytes = b"") -> None:
        """Send the initial sync (snapshots or replay) between `lead` and `tail` in one write, then whatever
        arrived live meanwhile, deduplicated. The sync is written before the client could read any of it, so its
        size is allowed on top of the bound."""
        frames = [lead] if lead else []
        for item in initial:
            self.last_sent[item.account] = item.seq  # a resync may move an account backwards (store reset)
            frames.append(item.frame)
        if tail:
            frames.append(tail)
        self.sync_bytes = sum(len(frame) for frame in frames)
        if frames:
            self.send(frames[0], len(frames), *frames[1:])
        pending, self.pending, self.holding = self.pending, [], False
        for item in pending:
            if self.wants(item.account):
                self.offer(item)

    def send(self, frame: bytes, count: int = 1, *more: bytes) -> None:
        """Write `frame` (`count` frames in all: it may hold several, and `more` follow it in the same send). The
        buffers are shared with other clients, never copied per client."""
        if self.closing is not None:
            return
        tally = self._tally
        tally.frames += count
        if more:
            tally.bytes += len(frame) + sum(map(len, more))
            owed = self.conn.write(frame, *more)
        else:  # one change, most of a pass: no tuple, no generator
            tally.bytes += len(frame)
            owed = self.conn.write(frame)
        if owed > self.backlog_bytes + self.sync_bytes:
            self.overflow()

    def overflow(self) -> None:
        self.metrics.dropped(self.route, "slow")
        self.close(CloseCode.TOO_SLOW, "client too slow: backlog over its bound")

    def close(self, code: CloseCode, reason: str, flush: bool = False) -> None:
        """Close after what is already on its way (after everything owed, when `flush` and within the bound);
        the connection ends TCP if the peer does not answer the close within the grace period."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self.pending.clear()
        self._inbox.clear()
        if not flush or self.conn.backlog > self.backlog_bytes:
            dropped = self.conn.drop_backlog()
            if dropped:
                self.metrics.frames_dropped(self.route, dropped)
        self.conn.close(code, reason, self.close_grace_s)

    # -- the connection's life ---------------------------------------------------------------------------------
    def start(self, handler: Callable[[str | bytes], None]) -> None:
        """Begin reading: each client message goes to `handler`, in order, in a greenlet (it may read the store)."""
        self._handler = handler
        self.conn.start(self._received, self._gone)

    def refuse(self, code: CloseCode, reason: str, flush: bool = True) -> None:
        """Close a client we will not serve, still reading what it sends (dropped) so its close answer arrives."""
        self.close(code, reason, flush)
        self.start(_ignore)

    def when_closed(self, callback: Callable[[], None]) -> None:
        self._on_closed.append(callback)

    def _received(self, message: str | bytes) -> None:
        # From the event loop: queue it and make sure a greenlet is handling messages.
        if self.closing is not None:
            return
        self._inbox.append(message)
        if len(self._inbox) > MAX_INBOX:
            self.close(CloseCode.POLICY, "too many messages")
        elif self._handling is None:
            self._handling = gevent.spawn(self._handle_inbox)

    def _handle_inbox(self) -> None:
        handler = self._handler
        try:
            while handler is not None and self._inbox and self.closing is None:
                handler(self._inbox.popleft())
        except Exception:  # noqa: BLE001 - a bug in one client's handling must not take the process down
            log.exception("ws %s: handling a message failed", self.conn.remote)
            self.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self._handling = None

    def _gone(self) -> None:
        self.closing = self.closing or (CloseCode.ABNORMAL, "connection lost")
        self.pending.clear()
        self._inbox.clear()
        self.closed.set()
        for callback in self._on_closed:
            try:
                callback()
            except Exception:  # noqa: BLE001 - run every cleanup whatever one of them does
                log.exception("ws %s: cleanup failed", self.conn.remote)


def _ignore(message: str | bytes) -> None:
    """Messages from a client we are closing."""
