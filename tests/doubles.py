"""Stand-ins for unit tests of pure bookkeeping (which frames a client gets); I/O is tested on real servers."""
from __future__ import annotations


class Recorder:
    """Takes a client's writes the way `transport.Connection.write` does (never a backlog) and keeps them."""

    backlog = 0

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.frames.append(data)
        return 0
