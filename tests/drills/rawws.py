"""Raw WebSocket over a plain socket, for clients no library would write: ones that stop reading after the
handshake, send malformed or oversized frames, or lie about lengths. RFC 6455 framing only, nothing more."""
from __future__ import annotations

import base64
import os
import socket
import struct
import time

from bench.wire import parse_frame

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def handshake(port: int, path: str = "/ws", rcvbuf: int | None = None, timeout: float = 10.0) -> socket.socket:
    """Open a TCP connection and complete the upgrade; reads exactly the response headers and nothing more."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the advertised window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"closed during the handshake: {head!r}")
        head += byte
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"upgrade refused: {head.splitlines()[0]!r}")
    return sock


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0,
          claimed_length: int | None = None) -> bytes:
    """A client frame; `claimed_length` lies about the payload length in the header."""
    length = len(payload) if claimed_length is None else claimed_length
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode
    mask_bit = 0x80 if mask else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(message: str | bytes) -> bytes:
    return frame(TEXT, message.encode() if isinstance(message, str) else message)


class Closed(Exception):
    """The server ended the conversation: `code` from its close frame (None if it just dropped TCP)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


class Reader:
    """Incremental reader of server frames (unmasked, per RFC 6455) on a raw socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _parse(self) -> tuple[int, bytes] | None:
        parsed = parse_frame(self.buf)
        if parsed is None:
            return None
        opcode, payload, self.buf = parsed
        return opcode, payload

    def next(self, deadline_s: float) -> tuple[int, bytes] | None:
        """The next frame, None at the deadline; raises Closed on a close frame or EOF."""
        end = time.monotonic() + deadline_s
        while True:
            parsed = self._parse()
            if parsed is not None:
                if parsed[0] == CLOSE:
                    payload = parsed[1]
                    raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005)
                return parsed
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionError:
                raise Closed(None) from None
            if not chunk:
                raise Closed(None)
            self.buf += chunk

    def until_text(self, predicate, deadline_s: float) -> dict | None:  # noqa: ANN001
        """The first JSON text message matching `predicate`, None at the deadline; raises Closed."""
        import json

        end = time.monotonic() + deadline_s
        while (left := end - time.monotonic()) > 0:
            got = self.next(left)
            if got is None:
                return None
            if got[0] == TEXT:
                message = json.loads(got[1])
                if predicate(message):
                    return message
        return None

    def close_code(self, deadline_s: float) -> tuple[bool, int | None]:
        """Read until the server closes: (closed within the deadline, close code or None for a bare drop)."""
        end = time.monotonic() + deadline_s
        try:
            while (left := end - time.monotonic()) > 0:
                self.next(left)
        except Closed as closed:
            return True, closed.code
        return False, None


def drain_to_eof(sock: socket.socket, deadline_s: float) -> tuple[bool, int]:
    """Read and discard until the server ends the connection; (ended, bytes read)."""
    end = time.monotonic() + deadline_s
    total = 0
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            chunk = sock.recv(1 << 20)
        except TimeoutError:
            return False, total
        except ConnectionError:
            return True, total
        if not chunk:
            return True, total
        total += len(chunk)
    return False, total


async def connect_and_sync(port: int, path: str, deadline_s: float) -> tuple[str, int | None, int]:
    """One raw client of a connect burst (asyncio): the upgrade, then frames until the initial sync is complete
    (/ws: the `status` frame after hello and snapshots) or the server closes. Returns (outcome, close code,
    snapshots): outcome "synced", "closed" (close frame or EOF), "refused" (no 101: its HTTP status) or "timeout".
    The connection
    is left open on success (the caller's `writers` list keeps it) so the server holds every client at once."""
    import asyncio
    import json

    key = base64.b64encode(os.urandom(16)).decode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), deadline_s)
    except (OSError, TimeoutError):
        return "refused", None, 0
    OPEN_WRITERS.append(writer)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    snapshots = 0
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline_s)
        if not head.startswith(b"HTTP/1.1 101"):
            return "refused", int(head[9:12]), 0  # the HTTP status in place of a close code
        buf = b""
        while True:
            parsed = parse_frame(buf)
            if parsed is None:
                chunk = await asyncio.wait_for(reader.read(65536), deadline_s)
                if not chunk:
                    return "closed", None, snapshots
                buf += chunk
                continue
            opcode, payload, buf = parsed
            if opcode == CLOSE:
                return "closed", struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005, snapshots
            if opcode == TEXT:
                kind = json.loads(payload)["type"]
                snapshots += kind == "snapshot"
                if kind == "status":
                    return "synced", None, snapshots
    except TimeoutError:
        return "timeout", None, snapshots
    except (OSError, asyncio.IncompleteReadError):
        return "closed", None, snapshots


async def until_synced(port: int, path: str, deadline_s: float) -> list[tuple[str, int | None, int]]:
    """A well-behaved client of a burst: refused with 1013 or 429, it waits the 1 s retry hint and tries again,
    until it is synced or the deadline passes. Returns every attempt's outcome, the last one first."""
    import asyncio
    import time as clock

    end = clock.monotonic() + deadline_s
    attempts: list[tuple[str, int | None, int]] = []
    while True:
        outcome = await connect_and_sync(port, path, max(1.0, end - clock.monotonic()))
        attempts.insert(0, outcome)
        if outcome[0] == "synced" or outcome[1] not in (1013, 429) or clock.monotonic() > end:
            return attempts
        await asyncio.sleep(1.0)  # the server's retry hint (retry_after=1 / Retry-After: 1)


OPEN_WRITERS: list = []  # asyncio writers of a burst, closed by the caller when it is done
