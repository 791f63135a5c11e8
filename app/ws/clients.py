"""One connected /ws client: its subscription, what it was last sent, and the bound on what it may owe.

Frames go straight to the connection (`transport.Connection.write`: one non-blocking send, the rest waits in its
backlog). A client whose backlog passes `queue_size` frames is closed with 4008 instead of stalling anyone else.
Client messages arrive from the event loop; they are handled one at a time, in order, by a greenlet that exists
only while there is something to handle, because handlers read the store and the event loop must never wait.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

import gevent
from gevent.event import Event

from app.ws import transport

log = logging.getLogger(__name__)
SLOW_CODE = 4008      # private-use close code for "you fell behind"; 1008 would read as a policy breach
MAX_INBOX = 64        # client messages waiting to be handled; more means a client flooding us


class Outgoing(NamedTuple):
    """One account message on its way to clients, encoded once for all of them."""

    account: int
    seq: int
    frame: bytes                 # the full message (snapshot, or update carrying the whole account)
    patch: bytes | None = None   # the same update as a patch, valid only for a client holding `prev_seq`
    prev_seq: int | None = None


class Client:
    """Subscription state plus the connection; `offer` is what the hub calls per change."""

    def __init__(self, conn: transport.Connection, queue_size: int, metrics: Any, close_grace_s: float = 5.0,
                 accounts: set[int] | None = None) -> None:
        self.conn = conn
        self.queue_size = queue_size
        self.metrics = metrics
        self.accounts = accounts      # None: every tracked account, including ones added later
        self.patches = False          # the client asked for patch updates (docs/websocket.md)
        self.last_sent: dict[int, int] = {}
        self.holding = True           # live changes wait in `pending` until the initial sync is queued
        self.pending: list[Outgoing] = []
        self.closing: tuple[int, str] | None = None
        self.closed = Event()
        self.close_grace_s = close_grace_s
        self._inbox: deque[str | bytes] = deque()
        self._handler: Callable[[str | bytes], None] | None = None
        self._handling: gevent.Greenlet | None = None
        self._on_closed: list[Callable[[], None]] = []

    # -- called by the hub and the views (never block) ----------------------------------------------------------
    def wants(self, account: int) -> bool:
        return self.accounts is None or account in self.accounts

    def offer(self, item: Outgoing, before: tuple[bytes, ...] = ()) -> None:
        """A change for `item.account`, in feed order. Skips what this client already has (resync races).
        `before`: frames for everyone (status, heartbeat) that go out first, in the same write."""
        if self.closing is not None:
            return
        if self.holding:
            self.send_all(before)
            self.pending.append(item)
            if len(self.pending) > self.queue_size:
                self.overflow()
            return
        frame = self._frame(item)
        if frame is not None:
            self.send(b"".join((*before, frame)) if before else frame, len(before) + 1)
        else:
            self.send_all(before)

    def _frame(self, item: Outgoing) -> bytes | None:
        """What to send this client for `item` (None: it has that already), remembering it as sent.

        A patch only applies to the account as of `prev_seq`: anyone holding something else gets the full update.
        """
        last = self.last_sent.get(item.account, -1)
        if item.seq <= last:
            return None
        self.last_sent[item.account] = item.seq
        if self.patches and item.patch is not None and last == item.prev_seq:
            return item.patch
        return item.frame

    def offer_many(self, items: list[Outgoing], before: tuple[bytes, ...] = ()) -> None:
        """Several changes in feed order (after `before`), written together (one syscall) when the client is live."""
        if self.closing is not None or self.holding:
            self.send_all(before)
            for item in items:
                if self.wants(item.account):
                    self.offer(item)
            return
        frames = [*before, *(frame for frame in (self._frame(item) for item in items if self.wants(item.account))
                             if frame is not None)]
        if frames:
            self.send(b"".join(frames), len(frames))

    def release(self, initial: list[Outgoing]) -> None:
        """Send the initial sync (snapshots or replay), then whatever arrived live meanwhile, deduplicated."""
        for item in initial:
            self.last_sent[item.account] = item.seq  # a resync may move an account backwards (store reset)
            self.send(item.frame)
        pending, self.pending, self.holding = self.pending, [], False
        for item in pending:
            if self.wants(item.account):
                self.offer(item)

    def send_all(self, frames: tuple[bytes, ...]) -> None:
        """Frames for everyone (status, heartbeat), in one write."""
        if frames:
            self.send(frames[0] if len(frames) == 1 else b"".join(frames), len(frames))

    def send(self, frame: bytes, count: int = 1) -> None:
        """Write `frame` (or `count` frames joined in one buffer)."""
        if self.closing is not None:
            return
        self.metrics.frames_sent += count
        if self.conn.write(frame) > self.queue_size:
            self.overflow()

    def overflow(self) -> None:
        self.metrics.clients_dropped.labels(reason="slow").inc()
        self.close(SLOW_CODE, f"client too slow: more than {self.queue_size} messages queued")

    def close(self, code: int, reason: str, flush: bool = False) -> None:
        """Close after what is already on its way (after everything owed, when `flush` and within the bound);
        the connection ends TCP if the peer does not answer the close within the grace period."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self.pending.clear()
        self._inbox.clear()
        if not flush or self.conn.backlog > self.queue_size:
            dropped = self.conn.drop_backlog()
            if dropped:
                self.metrics.messages_dropped.inc(dropped)
        self.conn.close(code, reason, self.close_grace_s)

    # -- the connection's life ---------------------------------------------------------------------------------
    def start(self, handler: Callable[[str | bytes], None]) -> None:
        """Begin reading: each client message goes to `handler`, in order, in a greenlet (it may read the store)."""
        self._handler = handler
        self.conn.start(self._received, self._gone)

    def refuse(self, code: int, reason: str, flush: bool = True) -> None:
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
            self.close(1008, "too many messages")
        elif self._handling is None:
            self._handling = gevent.spawn(self._handle_inbox)

    def _handle_inbox(self) -> None:
        try:
            while self._inbox and self.closing is None:
                self._handler(self._inbox.popleft())
        except Exception:  # noqa: BLE001 - a bug in one client's handling must not take the process down
            log.exception("ws %s: handling a message failed", self.conn.remote)
            self.close(1011, "internal error")
        finally:
            self._handling = None

    def _gone(self) -> None:
        self.closing = self.closing or (1006, "connection lost")
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
