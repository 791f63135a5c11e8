"""A lean WebSocket client: `websockets`' sans-I/O ClientProtocol driven by a bare asyncio.Protocol.

The handshake, masking, framing, ping/pong and closing handshake are the `websockets` library's own; what is left
out is its asyncio connection layer (futures, message assembler, keepalive task), which costs ~4× more CPU per
message. On a 2-core box that shared with the server, client CPU decides how many clients can be measured.
No extensions are offered, so compression is off. Messages must not be fragmented (our servers never do).

Once open, complete unfragmented text/binary frames (all that either server sends per message) are split off the
byte stream here, without the library's generator-based parser: at 20,000 messages/s per process that parser was
a third of the load generator's CPU. The first byte that is anything else (a control frame, a fragment, a masked
frame) hands the rest of the stream, from that frame boundary on, back to the library for good.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class LeanClient(asyncio.Protocol):
    """`on_message(payload_bytes)` for each text/binary frame; `opened` resolves after the 101, `done` on close."""

    def __init__(self, url: str, on_message: Callable[[bytes], None]) -> None:
        self.proto = ClientProtocol(parse_uri(url), max_size=2**24)
        self.on_message = on_message
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future = loop.create_future()
        self.done: asyncio.Future = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.handshaking = True  # until the end of the response head
        self.fast = False        # splitting frames here (see the module docstring)
        self.pending = b""       # a partial response head, or a partial frame while fast

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.handshaking:
            # The library gets exactly the response head; frames after it start at a boundary we split from.
            head = self.pending + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self.pending = head
                return
            self.pending, self.handshaking, data = b"", False, head[end + 4:]
            self._receive(head[:end + 4])
            self.fast = self.opened.done() and self.opened.exception() is None
        if self.fast:
            data = self._split(self.pending + data if self.pending else data)
            if self.fast:
                return
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        self.proto.receive_data(data)
        for event in self.proto.events_received():
            if isinstance(event, Response):
                if not self.opened.done():
                    if self.proto.handshake_exc is not None:
                        self.opened.set_exception(self.proto.handshake_exc)
                    else:
                        self.opened.set_result(None)
            elif event.opcode in (Opcode.TEXT, Opcode.BINARY):
                self.on_message(event.data)
        self._flush()

    def _split(self, buf: bytes) -> bytes:
        """Deliver the complete final unmasked text/binary frames in `buf`; returns what the library must parse
        (everything from the first other frame on, after which `fast` is off), or b"" keeping a partial frame."""
        pos, size, on_message = 0, len(buf), self.on_message
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            if first not in (0x81, 0x82) or second & 0x80:
                self.fast = False
                return buf[pos:]
            length, start = second, pos + 2
            if length == 126:
                length, start = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
            elif length == 127:
                length, start = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
            end = start + length
            if end > size:
                break
            on_message(buf[start:end])
            pos = end
        self.pending = buf[pos:]
        return b""

    def _flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                self.transport.write_eof()  # the protocol asks for EOF after the closing handshake

    def send_text(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def eof_received(self) -> bool:
        self.proto.receive_eof()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))
        if not self.done.done():
            close = self.proto.close_rcvd
            self.done.set_result(f"{close.code} {close.reason}" if close else f"connection lost: {exc}")


async def open_client(url: str, on_message: Callable[[bytes], None], timeout: float = 120) -> LeanClient:
    """Connect to a ws:// URL on its host:port and complete the handshake."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(
        loop.create_connection(lambda: LeanClient(url, on_message), uri.host, uri.port), timeout)
    try:
        await asyncio.wait_for(client.opened, timeout)
    except BaseException:
        client.close()
        raise
    return client
