"""One connected /ws client: its subscription, its bounded queue and the writer greenlet that drains it.

The writer owns the socket: every wait on the peer happens there, and a full queue closes the client instead of
stalling anyone else. One shortcut keeps fan-out cheap: while the writer is idle and the queue is empty, `send`
hands the frame to the kernel with one non-blocking syscall (no greenlet switch per client per message, which
dominated the hub's CPU). That syscall cannot yield, so it never interleaves with the writer; whatever the kernel
does not take goes to the front of the empty queue, so frames stay in order.
"""
from __future__ import annotations

import logging
from typing import Any

import gevent
from gevent.event import Event
from gevent.queue import Full, Queue

from app import transport

log = logging.getLogger(__name__)
_CLOSE = object()     # queue sentinel: send the close frame and stop
SLOW_CODE = 4008      # private-use close code for "you fell behind"; 1008 would read as a policy breach


class Client:
    """Subscription state plus a bounded outbound queue; `offer` is what the hub calls per change."""

    def __init__(self, conn: transport.Connection, queue_size: int, metrics: Any, close_grace_s: float = 5.0,
                 accounts: set[int] | None = None) -> None:
        self.conn = conn
        self.queue: Queue = Queue(queue_size)
        self.queue_size = queue_size
        self.metrics = metrics
        self.accounts = accounts      # None: every tracked account, including ones added later
        self.last_sent: dict[int, int] = {}
        self.holding = True           # live changes wait in `pending` until the initial sync is queued
        self.pending: list[tuple[int, int, bytes]] = []
        self.closing: tuple[int, str] | None = None
        self.closed = Event()
        self.close_grace_s = close_grace_s
        self.writer: gevent.Greenlet | None = None
        self.writing = False          # the writer holds a frame it has not finished writing

    # -- called by the hub and the request greenlet (never block, never write) -------------------------------
    def wants(self, account: int) -> bool:
        return self.accounts is None or account in self.accounts

    def offer(self, account: int, seq: int, frame: bytes) -> None:
        """A change for `account`, in feed order. Skips what this client already has (resync races)."""
        if self.closing is not None:
            return
        if self.holding:
            self.pending.append((account, seq, frame))
            if len(self.pending) > self.queue_size:
                self.overflow()
            return
        if seq > self.last_sent.get(account, -1):
            self.last_sent[account] = seq
            self.send(frame)

    def release(self, initial: list[tuple[int, int, bytes]]) -> None:
        """Queue the initial sync (snapshots or replay), then whatever arrived live meanwhile, deduplicated."""
        for account, seq, frame in initial:
            self.last_sent[account] = seq  # a resync may move an account backwards (store reset): accept it
            self.send(frame)
        pending, self.pending, self.holding = self.pending, [], False
        for account, seq, frame in pending:
            if self.wants(account):
                self.offer(account, seq, frame)

    def send(self, frame: bytes) -> None:
        if self.closing is not None:
            return
        if not self.writing and self.queue.empty() and self.writer is not None:
            try:
                sent = self.conn.try_write(frame)
            except OSError:
                sent = 0  # a dead socket: queue it, and the writer meets the error and closes the client
            if sent == len(frame):
                self.metrics.messages_sent.inc()
                return
            if sent:
                frame = memoryview(frame)[sent:]
        try:
            self.queue.put_nowait(frame)
        except Full:
            self.overflow()

    def overflow(self) -> None:
        self.metrics.clients_dropped.labels(reason="slow").inc()
        self.close(SLOW_CODE, f"client too slow: more than {self.queue_size} messages queued")

    def close(self, code: int, reason: str, flush: bool = False) -> None:
        """Ask the writer to close after its current frame (after what is queued when `flush`); abort the TCP
        connection if the peer does not take the close frame within the grace period."""
        if self.closing is not None:
            return
        self.closing = (code, reason)
        self.pending.clear()
        if not flush or self.queue.full():
            queued = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
            # The rest of a frame the kernel took in part must still go out, or the close frame lands mid-frame.
            keep = queued[:1] if queued and isinstance(queued[0], memoryview) else []
            for item in keep:
                self.queue.put_nowait(item)
            if len(queued) > len(keep):
                self.metrics.messages_dropped.inc(len(queued) - len(keep))
        self.queue.put_nowait(_CLOSE)
        # A peer that stopped reading keeps the writer blocked in sendall forever: give it a grace period.
        gevent.spawn_later(self.close_grace_s, self._abort_if_open)

    # -- the writer greenlet ---------------------------------------------------------------------------------
    def start(self) -> None:
        self.writer = gevent.spawn(self._write_loop)

    def _write_loop(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is _CLOSE:
                    self.conn.close(*self.closing)
                    return
                self.writing = True
                self.conn.write(item)
                self.writing = False
                self.metrics.messages_sent.inc()
        except transport.TransportError as exc:
            log.debug("ws %s: write failed: %s", self.conn.remote, exc)
            self.closing = self.closing or (1006, "write failed")
            self.conn.abort()
        finally:
            self.closed.set()

    def _abort_if_open(self) -> None:
        if not self.closed.is_set():
            log.info("ws %s: did not take its close frame within %.0f s; aborting", self.conn.remote,
                     self.close_grace_s)
            if self.writer is not None:
                self.writer.kill(block=False)
            self.conn.abort()
            self.closed.set()
