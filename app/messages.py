"""Pure builders for /ws protocol messages (docs/websocket.md): each returns the JSON text sent on the wire."""
from __future__ import annotations

from typing import Any

import orjson

from app.store import Change, now_ms, with_freshness

PROTOCOL = 1


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def hello(accounts: list[int], heartbeat_s: float, max_message: int, subscribed: list[int] | None) -> str:
    return encode({"type": "hello", "protocol": PROTOCOL, "server_time": now_ms(), "accounts": accounts,
                   "subscribed": subscribed, "heartbeat_s": heartbeat_s, "max_message_bytes": max_message})


def account_message(kind: str, snapshot: dict[str, Any], ttl_s: float, resync: bool = False) -> str:
    """`snapshot` or `update` for one account; freshness is computed once, when the message is encoded."""
    message = {"type": kind, "seq": snapshot.get("seq", 0), "prev_seq": snapshot.get("prev_seq"),
               "account_index": snapshot["account_index"], "account": with_freshness(snapshot, ttl_s)}
    if kind == "snapshot":
        message["resync"] = resync
    return encode(message)


def update(change: Change, ttl_s: float) -> str:
    return account_message("update", change.snapshot, ttl_s)


def status(view: dict[str, Any]) -> str:
    return encode({"type": "status", "status": view})


def heartbeat(seq: int) -> str:
    return encode({"type": "heartbeat", "server_time": now_ms(), "seq": seq})


def subscribed(accounts: list[int] | None) -> str:
    return encode({"type": "subscribed", "accounts": accounts})


def error(code: str, message: str) -> str:
    return encode({"type": "error", "code": code, "message": message})


def parse_accounts(value: Any, limit: int = 1000) -> list[int] | None:
    """A client's account list: ints in int64 range, at most `limit`; None when the value is not that."""
    if not isinstance(value, list) or len(value) > limit:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in value):
        return None
    return list(dict.fromkeys(value))
