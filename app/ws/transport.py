"""The one module that knows how a WebSocket is carried: taken over after gevent-websocket's handshake, then run
by event-loop callbacks with no greenlet per connection.

Why: an idle connection that parks a greenlet (pywsgi's handler blocked in `receive`, plus a writer) costs ~45 KB
and a greenlet switch per client per message. Here, after the 101, the view takes the socket from pywsgi (which
then neither drains nor closes it) and the handler greenlet ends. What is left per client is a socket, two libev
watchers and `websockets`' sans-I/O protocol, which does the parsing, limits, ping/pong and closing handshake.

Writes of server frames bypass the protocol object: each frame is built once (`frame_text`) and the same bytes go
to every socket with one non-blocking `send`; whatever the kernel does not take waits in the connection's
backlog and goes out when the socket turns writable. All of this runs in the event loop: nothing here blocks,
and callbacks never raise into the hub.
"""
from __future__ import annotations

import _socket
import logging
import socket
from collections import deque
from collections.abc import Callable
from itertools import islice
from typing import Any

from gevent import get_hub
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, Protocol, Side

from app.ws.codes import CloseCode

log = logging.getLogger(__name__)
WRITE_PARTS = 64  # buffers per gathered send when catching up (well under IOV_MAX, 1024 on Linux)
# websockets logs every frame at DEBUG, client payloads included (a /stream subscribe carries `auth`): never.
_FRAMES_LOG = logging.getLogger(f"{__name__}.frames")
_FRAMES_LOG.setLevel(logging.INFO)
_READ, _WRITE = 1, 2          # libev event masks
_RECV_BYTES = 65536
_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
# Reading stops while more than this is owed to the peer, and resumes once it is all out. Our answers to its frames
# (pongs above all: a ping flood from a client that never reads) bypass the client's backlog bound, so without
# this a peer could make us hold whatever it sends. Hub frames are bounded by the client (app/ws/clients.py).
READ_PAUSE_BYTES = 1 << 20


def frame(opcode: Opcode, payload: bytes) -> bytes:
    return Frame(opcode, payload).serialize(mask=False, extensions=[])


def frame_text(text: str) -> bytes:
    """A complete unmasked text frame: encode once, write to many sockets."""
    return frame(Opcode.TEXT, text.encode())


class Connection:
    """One WebSocket after the handshake. `start` begins reading; `write`/`close` may be called from any greenlet
    or callback (none of them waits)."""

    def __init__(self, sock: _socket.socket, remote: str, max_message: int) -> None:
        self._sock = sock                               # a real (not gevent's) non-blocking socket
        self.remote = remote
        self.protocol = Protocol(Side.SERVER, state=OPEN, max_size=max_message, logger=_FRAMES_LOG)
        loop = get_hub().loop
        self._loop = loop
        self._reader = loop.io(sock.fileno(), _READ)
        self._writer = loop.io(sock.fileno(), _WRITE)
        self._timer: Any = None
        self._backlog: deque[bytes | memoryview] = deque()
        self._owed = 0                                  # bytes in the backlog
        self._parts: list[bytes | bytearray | memoryview] = []  # a fragmented message so far
        self._text = True
        self._eof = False                               # the protocol asked us to end TCP once the backlog is out
        self._paused = False                            # reading stopped until the backlog is out
        self._on_message: Callable[[str | bytes], None] | None = None
        self._on_closed: Callable[[], None] | None = None
        self.closed = False

    # -- writing -------------------------------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        """Bytes the kernel has not taken yet (the frames waiting are shared with other clients, not copies)."""
        return self._owed

    def write(self, data: bytes, *more: bytes) -> int:
        """Send pre-built frames (`data`, then `more`) without waiting: the kernel takes them now (one gathered
        send) or they wait in the backlog, in order, as references to the same bytes every client gets.
        Returns the bytes owed."""
        backlog = self._backlog
        if self.closed:
            return 0
        if not more and not backlog:  # the fan-out's common case: one buffer, nothing owed before it
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._lost(exc)
                return 0
            if sent == len(data):
                return 0
            backlog.append(memoryview(data)[sent:] if sent else data)
            self._owed = len(data) - sent
            self._writer.start(self._writable)
            return self._owed
        parts = (data, *more) if more else (data,)
        if backlog:
            backlog.extend(parts)
            self._owed += sum(len(p) for p in parts)
            return self._owed
        try:
            sent = self._sock.send(data) if not more else self._sock.sendmsg(parts)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return 0
        for part in parts:
            size = len(part)
            if sent >= size:
                sent -= size
                continue
            backlog.append(memoryview(part)[sent:] if sent else part)
            self._owed += size - sent
            sent = 0
        if backlog:
            self._writer.start(self._writable)
        return self._owed

    def drop_backlog(self) -> int:
        """Forget the frames still waiting, except the rest of one the kernel took in part (or the peer would get
        half a frame). Returns how many were dropped."""
        backlog = self._backlog
        keep = backlog[0] if backlog and isinstance(backlog[0], memoryview) else None
        dropped = len(backlog) - (keep is not None)
        backlog.clear()
        self._owed = 0
        if keep is not None:
            backlog.append(keep)
            self._owed = len(keep)
        return dropped

    def _writable(self) -> None:
        backlog = self._backlog
        try:
            while backlog:
                # Everything owed in one gathered send (a client that fell behind owes one buffer per change).
                parts = list(islice(backlog, WRITE_PARTS)) if len(backlog) > 1 else [backlog[0]]
                sent = self._sock.sendmsg(parts) if len(parts) > 1 else self._sock.send(parts[0])
                self._owed -= sent
                for part in parts:
                    size = len(part)
                    if sent < size:
                        if sent:  # a part the kernel took in part (a whole one stays as it is: see drop_backlog)
                            backlog[0] = memoryview(part)[sent:]
                        return
                    sent -= size
                    backlog.popleft()
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        self._writer.stop()
        if self._eof:
            self._finish()
        elif self._paused:
            self._paused = False
            self._reader.start(self._readable)

    # -- reading -------------------------------------------------------------------------------------------------
    def start(self, on_message: Callable[[str | bytes], None], on_closed: Callable[[], None]) -> None:
        """Deliver each complete client message to `on_message` (in the event loop: it must not block) and call
        `on_closed` once when the connection is gone."""
        self._on_message, self._on_closed = on_message, on_closed
        if self.closed:
            on_closed()
        else:
            self._reader.start(self._readable)

    def _readable(self) -> None:
        try:
            data = self._sock.recv(_RECV_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Frame) and event.opcode in _DATA:
                self._assemble(event)
        self._send_protocol_output()  # pongs, our close answer, or a close for a protocol violation
        if self._owed > READ_PAUSE_BYTES and not self.closed:
            self._paused = True  # the peer does not read what it makes us write: stop taking more from it
            self._reader.stop()

    def _assemble(self, event: Frame) -> None:
        if event.opcode is not Opcode.CONT:
            self._parts, self._text = [], event.opcode is Opcode.TEXT
        self._parts.append(event.data)
        if not event.fin:
            return
        data, self._parts = b"".join(self._parts), []
        # The protocol has checked the size bound (closing with 1009); UTF-8 is ours to check (the library leaves
        # it to its own connection layer).
        try:
            message = data.decode() if self._text else data
        except UnicodeDecodeError:
            self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text message")
            return
        if self._on_message is not None and self.protocol.state is OPEN:
            try:
                self._on_message(message)
            except Exception:  # noqa: BLE001 - a handler bug must not reach the event loop; close this client
                log.exception("ws %s: message handler failed", self.remote)
                self.close(CloseCode.INTERNAL_ERROR, "internal error", 1.0)

    # -- closing -------------------------------------------------------------------------------------------------
    def close(self, code: int, reason: str, grace_s: float) -> None:
        """Start the closing handshake after what is in the backlog; end TCP when the peer answers, or after
        `grace_s` if it does not (a peer that stopped reading never takes the close frame)."""
        if self.closed or self.protocol.state is not OPEN:
            return
        self.protocol.send_close(code, reason[:120])
        self._send_protocol_output()
        if not self.closed and self._timer is None:
            self._timer = self._loop.timer(grace_s)
            self._timer.start(self._lost, None)

    def _send_protocol_output(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.write(data)
            else:
                self._eof = True  # the protocol is done with this connection: end TCP once the backlog is out
        if self._eof and not self._backlog:
            self._finish()

    def _lost(self, exc: BaseException | None) -> None:
        if not self.closed:
            log.debug("ws %s: connection ended: %s", self.remote, exc or "EOF")
            self._finish()

    def _finish(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._backlog.clear()
        self._owed = 0
        for watcher in (self._reader, self._writer, self._timer):
            if watcher is not None:
                watcher.stop()
                watcher.close()
        self._timer = None
        try:
            self._loop.closing_fd(self._sock.fileno())  # as gevent's own sockets do: libev forgets this number
            self._sock.close()
        except OSError:
            pass  # already gone: exactly what we wanted
        if self._on_closed is not None:
            on_closed, self._on_closed, self._on_message = self._on_closed, None, None
            # Later, from the loop: this may run inside a caller's loop over clients (a failed write).
            self._loop.run_callback(on_closed)


def accept(environ: dict[str, Any], max_message: int) -> Connection | None:
    """Take the connection of an upgraded request from gevent-websocket and pywsgi (None: not an upgrade).

    gevent-websocket has already sent the 101. From here pywsgi's handler must not touch the socket: with its
    `socket` attribute cleared, it ends its keep-alive loop without draining it (a drain would eat the client's
    first messages) or shutting it down, and gevent-websocket,
    told the WebSocket is closed, sends no close frame of its own when the view returns. Clients may not send
    before the 101 (RFC 6455 4.1), so nothing of theirs is left in pywsgi's read buffer.
    """
    ws = environ.get("wsgi.websocket")
    if ws is None:
        return None
    handler = ws.handler
    sock = handler.socket
    handler.socket = None
    ws.closed = True
    # gevent's server closes its socket object when the handler returns: detached, that close is a no-op and the
    # descriptor is ours. (Not a dup: epoll keeps reporting a closed duplicate's number, which libev then reuses.)
    own = _socket.socket(fileno=sock.detach())
    own.setblocking(False)
    try:
        own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames are written whole; don't hold them
    except OSError:
        pass
    return Connection(own, environ.get("REMOTE_ADDR", "?"), max_message)
