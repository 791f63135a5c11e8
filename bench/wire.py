"""One WebSocket frame read off raw bytes (RFC 6455 §5.2, server frames: never masked), for the clients that speak
the wire themselves: bench/edges.py's burst clients and tests/drills/rawws.py's hostile ones."""
from __future__ import annotations

import struct


def parse_frame(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(opcode, payload, rest) of the first complete server frame in `buf`, None if it is not complete yet."""
    if len(buf) < 2:
        return None
    opcode, length, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
    if length == 126:
        if len(buf) < 4:
            return None
        length, offset = struct.unpack("!H", buf[2:4])[0], 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length, offset = struct.unpack("!Q", buf[2:10])[0], 10
    if len(buf) < offset + length:
        return None
    return opcode, buf[offset:offset + length], buf[offset + length:]
