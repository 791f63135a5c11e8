"""The one module that knows gevent-websocket: accept, receive with a size bound, write pre-built frames, close.

Frames are built once per message (`frame_text`) and the same bytes are written to every socket: gevent-websocket
re-encodes a `str` on every send and mangles `bytes` sent as text. Only one greenlet per connection may call
`write`/`close` (the client's writer); `receive` runs in the request greenlet and hands control frames that need
an answer (ping) back through `on_control` so the writer sends them.
"""
from __future__ import annotations

import socket
import struct
from typing import Any, Callable

from geventwebsocket.exceptions import ProtocolError, WebSocketError
from geventwebsocket.websocket import Header, WebSocket

TEXT, BINARY, CONTINUATION = WebSocket.OPCODE_TEXT, WebSocket.OPCODE_BINARY, WebSocket.OPCODE_CONTINUATION
CLOSE, PING, PONG = WebSocket.OPCODE_CLOSE, WebSocket.OPCODE_PING, WebSocket.OPCODE_PONG
TransportError = (WebSocketError, OSError)


class MessageTooBig(Exception):
    """The peer sent a message larger than the bound; the caller closes with 1009."""


class PeerClosed(Exception):
    """The peer sent a close frame (or protocol garbage); `code` is what we answer with."""

    def __init__(self, code: int = 1000) -> None:
        super().__init__(code)
        self.code = code


def frame(opcode: int, payload: bytes) -> bytes:
    return Header.encode_header(True, opcode, b"", len(payload), 0) + payload


def frame_text(text: str) -> bytes:
    """A complete unmasked text frame: encode once, write to many sockets."""
    return frame(TEXT, text.encode())


def close_frame(code: int, reason: str) -> bytes:
    return frame(CLOSE, struct.pack("!H", code) + reason.encode()[:120])


class Connection:
    """One accepted WebSocket."""

    def __init__(self, ws: WebSocket, max_message: int) -> None:
        self._ws = ws
        self._read = ws.stream.read
        self._socket = ws.handler.socket
        self._raw = getattr(self._socket, "_sock", None) or self._socket  # gevent's wrapped non-blocking socket
        self.max_message = max_message
        self.remote = ws.environ.get("REMOTE_ADDR", "?")

    def receive(self, on_control: Callable[[bytes], None]) -> str | bytes:
        """The next complete message. Raises MessageTooBig, PeerClosed, or a TransportError."""
        opcode, message = None, bytearray()
        while True:
            try:
                header = Header.decode_header(self._ws.stream)
            except ProtocolError:
                raise PeerClosed(1002) from None
            if header.flags:
                raise PeerClosed(1002)
            if header.length > self.max_message or len(message) + header.length > self.max_message:
                raise MessageTooBig()
            payload = self._read(header.length) if header.length else b""
            if len(payload) != header.length:
                raise WebSocketError("unexpected EOF reading a frame")
            if header.mask:
                payload = header.unmask_payload(payload)
            if header.opcode == PING:
                on_control(frame(PONG, bytes(payload)))
                continue
            if header.opcode == PONG:
                continue
            if header.opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
                raise PeerClosed(1000 if 1000 <= code < 5000 else 1002)
            if header.opcode in (TEXT, BINARY) and opcode is None:
                opcode = header.opcode
            elif header.opcode != CONTINUATION or opcode is None:
                raise PeerClosed(1002)
            message += payload
            if header.fin:
                break
        if opcode == BINARY:
            return bytes(message)
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise PeerClosed(1007) from None

    def write(self, data: bytes | memoryview) -> None:
        """Write one pre-built frame, waiting for the peer as long as it takes (writer greenlet only)."""
        self._socket.sendall(data)

    def try_write(self, data: bytes) -> int:
        """Hand bytes to the kernel without waiting: how many it took (0 when its buffer is full).

        One non-blocking syscall on the real socket under gevent's wrapper: it never yields to another greenlet,
        so it cannot interleave with the writer; the caller queues whatever was not taken.
        """
        try:
            return self._raw.send(data)
        except BlockingIOError:
            return 0

    def close(self, code: int, reason: str) -> None:
        """Send a close frame (writer greenlet only) and mark the socket closed for gevent-websocket."""
        try:
            self._socket.sendall(close_frame(code, reason))
        finally:
            self.mark_closed()

    def mark_closed(self) -> None:
        # gevent-websocket writes its own close frame after the view returns unless told it is already closed.
        self._ws.closed = True

    def abort(self) -> None:
        """Tear the TCP connection down from any greenlet (a writer stuck on a peer that stopped reading)."""
        self.mark_closed()
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already gone: exactly what we wanted


def accept(environ: dict[str, Any], max_message: int) -> Connection | None:
    ws = environ.get("wsgi.websocket")
    return None if ws is None else Connection(ws, max_message)
