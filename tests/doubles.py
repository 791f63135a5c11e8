"""Stand-ins for unit tests of pure bookkeeping (which frames a client gets); I/O is tested on real servers."""
from __future__ import annotations

from collections.abc import Callable

import orjson


class Recorder:
    """Takes a client's writes the way `transport.Connection.write` does (never a backlog) and keeps them; the
    rest of `app.ws.clients.Connection` is recorded too (closes) or inert (reading)."""

    backlog = 0
    remote = "recorder"

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.parts: list[tuple[bytes, ...]] = []  # each write's buffers as handed over (shared, never copied)
        self.closed_with: tuple[int, str] | None = None

    def write(self, data: bytes, *more: bytes) -> int:
        self.frames.append(b"".join((data, *more)))  # one write, as the socket receives it
        self.parts.append((data, *more))
        return 0

    def drop_backlog(self) -> int:
        return 0

    def close(self, code: int, reason: str, grace_s: float) -> None:
        self.closed_with = (code, reason)

    def start(self, on_message: Callable[[str | bytes], None], on_closed: Callable[[], None]) -> None:
        pass  # nothing is ever received


def payloads(write: bytes) -> list[bytes]:
    """The JSON payloads of the server-built (unmasked, unfragmented) text frames in one recorded write."""
    out = []
    while write:
        length, at = write[1] & 0x7F, 2
        if length == 126:
            length, at = int.from_bytes(write[2:4], "big"), 4
        elif length == 127:
            length, at = int.from_bytes(write[2:10], "big"), 10
        out.append(write[at:at + length])
        write = write[at + length:]
    return out


def messages(recorder: Recorder) -> list[dict]:
    """Every message written so far, decoded, in order (several frames may share one write); then forgotten."""
    out = [orjson.loads(p) for write in recorder.frames for p in payloads(write)]
    recorder.frames.clear()
    return out
