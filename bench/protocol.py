"""What a /ws message looks like to the bench (docs/websocket.md): pulling seq, prev_seq and the stamp out.

Updates are `{"type": "update", "seq", "prev_seq", "account_index", "account": snapshot-with-freshness}`;
on connect (and on resync) the server sends `{"type": "snapshot", ..., "resync": bool}` per account. The
reference server encodes with `encode_update`, so both servers put the same bytes on the wire.
"""
from __future__ import annotations

import re
from typing import Any

import orjson

from bench.payload import STAMP_KEY
from core.snapshot import with_freshness

TTL_S = 5.0


def encode_update(snapshot: dict[str, Any]) -> bytes:
    """One update message for `snapshot`, byte for byte the shape our /ws sends (app.ws.messages.update)."""
    return orjson.dumps({"type": "update", "seq": snapshot["seq"], "prev_seq": snapshot["prev_seq"],
                         "account_index": snapshot["account_index"], "account": with_freshness(snapshot, TTL_S)})


def encode_snapshot(snapshot: dict[str, Any]) -> bytes:
    """One initial-sync message for `snapshot`, the shape of our /ws `snapshot` (app.ws.messages.account_message)."""
    return orjson.dumps({"type": "snapshot", "seq": snapshot["seq"], "account_index": snapshot["account_index"],
                         "account": with_freshness(snapshot, TTL_S)})


def stamp_of(msg: dict[str, Any]) -> float | None:
    data = (((msg.get("account") or {}).get("sections") or {}).get("summary") or {}).get("data")
    return data.get(STAMP_KEY) if isinstance(data, dict) else None


# The load generator reads ~20,000 updates/s per process: pulling the few fields it needs out of the bytes costs
# a fraction of decoding 2 KB of JSON. Both servers encode updates with orjson in this key order (encode_update,
# app.ws.messages.update); anything that does not match goes through the full decode.
_UPDATE_HEAD = re.compile(rb'\{"type":"update","seq":(\d+),"prev_seq":(\d+|null),"account_index":(\d+),')
_STAMP = re.compile(rb'"' + STAMP_KEY.encode() + rb'":(-?[0-9.eE+]+)[,}]')


def quick_update(raw: bytes) -> tuple[int, int | None, int, float | None] | None:
    """(seq, prev_seq, account_index, stamp) of an update message, or None when `raw` is not one."""
    head = _UPDATE_HEAD.match(raw)
    if head is None:
        return None
    seq, prev, account = head.groups()
    stamp = _STAMP.search(raw, head.end())
    return (int(seq), None if prev == b"null" else int(prev), int(account),
            float(stamp.group(1)) if stamp else None)
