"""What the store's backends keep: plain bytes, never pickles.

cachelib pickles values by default (its FileSystemCache and RedisCache call `pickle.load(s)` on what they read),
so anyone able to write one value could run code in every process that reads it. Both backends take a
`serializer` object (a class attribute we override per instance); ours passes bytes through untouched and returns
what it read as bytes. `decode` then parses them as JSON: anything else (a planted pickle, a truncated file, an
older release's pickled value) is a `CorruptValue`, which callers treat as missing, log once, and the worker heals.
"""
from __future__ import annotations

import logging
from typing import IO, Any

import orjson

log = logging.getLogger(__name__)
PICKLE_MARKERS = (b"\x80", b"!\x80")  # pickle protocol 2+ (file store), cachelib's Redis "!"-prefixed pickle


class CorruptValue(ValueError):
    """A stored value that is not our JSON (truncated, garbage, or a pickle)."""


class BytesSerializer:
    """cachelib's serializer interface (dump/load for files, dumps/loads for Redis) over raw bytes."""

    def dump(self, value: bytes, f: IO[bytes]) -> None:
        f.write(_require_bytes(value))

    def load(self, f: IO[bytes]) -> bytes:
        return f.read()

    def dumps(self, value: bytes) -> bytes:
        return _require_bytes(value)

    def loads(self, value: bytes | None) -> bytes | None:
        return value


def _require_bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        # Only encoded JSON goes in: a stray object would otherwise be stored by repr, or not at all.
        raise TypeError(f"the store keeps bytes, got {type(value).__name__}")
    return value


def encode(value: Any) -> bytes:
    return orjson.dumps(value)


def decode(raw: bytes) -> Any:
    """The JSON value in `raw`; CorruptValue if it is not JSON (a pickle is never unpickled, only recognised)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        kind = "a pickle" if raw.startswith(PICKLE_MARKERS) else f"{len(raw)} bytes that are not JSON"
        raise CorruptValue(kind) from exc
