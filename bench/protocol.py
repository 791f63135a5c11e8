"""What a /ws message looks like to the bench (docs/websocket.md): pulling seq, prev_seq and the stamp out.

Updates are `{"type": "update", "seq", "prev_seq", "account_index", "account": snapshot-with-freshness}`;
on connect (and on resync) the server sends `{"type": "snapshot", ..., "resync": bool}` per account. The
reference server encodes with `encode_update`, so both servers put the same bytes on the wire.
"""
from __future__ import annotations

from typing import Any

import orjson

from app.store import with_freshness
from bench.payload import STAMP_KEY

TTL_S = 5.0


def encode_update(snapshot: dict[str, Any]) -> bytes:
    """One update message for `snapshot`, byte for byte the shape our /ws sends (app.messages.update)."""
    return orjson.dumps({"type": "update", "seq": snapshot["seq"], "prev_seq": snapshot["prev_seq"],
                         "account_index": snapshot["account_index"], "account": with_freshness(snapshot, TTL_S)})


def stamp_of(msg: dict[str, Any]) -> float | None:
    data = (((msg.get("account") or {}).get("sections") or {}).get("summary") or {}).get("data")
    return data.get(STAMP_KEY) if isinstance(data, dict) else None
