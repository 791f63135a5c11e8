"""Pure builders for /ws protocol messages (docs/websocket.md): each returns the JSON text sent on the wire."""
from __future__ import annotations

from typing import Any

import orjson

from app.ws import patches
from core.snapshot import Snapshot, now_ms, with_freshness
from core.store import Change

# 2: a confirmation (the data unchanged, only its freshness moved) is a small `confirm` frame. 1 (`?v=1`, or
# `?confirm=full` on 2): it is a full (or patch) update, as before.
PROTOCOL = 2
LEGACY_PROTOCOL = 1
CONFIRM_MODES = ("small", "full")
# A confirm frame stays under this many bytes (one per account per confirmation, to every client): held by a test.
CONFIRM_MAX_BYTES = 512


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def hello(accounts: list[int], heartbeat_s: float, max_message: int, subscribed: list[int] | None,
          updates: str = "full", protocol: int = PROTOCOL, confirm: str = "small") -> str:
    return encode({"type": "hello", "protocol": protocol, "server_time": now_ms(), "accounts": accounts,
                   "subscribed": subscribed, "updates": updates, "confirm": confirm, "heartbeat_s": heartbeat_s,
                   "max_message_bytes": max_message})


def account_message(kind: str, snapshot: Snapshot, ttl_s: float, resync: bool = False) -> str:
    """`snapshot` or `update` for one account; freshness is computed once, when the message is encoded."""
    message: dict[str, Any] = {"type": kind, "seq": snapshot.get("seq", 0), "prev_seq": snapshot.get("prev_seq"),
               "account_index": snapshot["account_index"], "account": with_freshness(snapshot, ttl_s)}
    if kind == "snapshot":
        message["resync"] = resync
    return encode(message)


def update(change: Change, ttl_s: float) -> str:
    return account_message("update", change.snapshot, ttl_s)


# The top-level fields a confirm frame sets on the held account (besides its per-section `as_of`/`source`).
CONFIRM_FIELDS = ("seq", "prev_seq", "version", "written_at", "as_of")


def confirmation(change: Change, previous: Snapshot | None, ttl_s: float) -> str | None:
    """The small `confirm` frame for a change that only moved freshness (the same content `version`) of the
    account clients hold as `previous` (at the change's `prev_seq`); None when the change is not that.

    Applying it to the held account gives the full update's account: `CONFIRM_FIELDS`, `age_ms` and `stale` at top
    level, and `as_of`, `source`, `stale` of each section listed (those whose `as_of` or `source` moved); every
    section's `age_ms` is then `as_of + age_ms - section.as_of` (floored at 0). Anything else moving (it should
    not, with the version unchanged) makes it a full update instead."""
    snapshot = change.snapshot
    version = snapshot.get("version")
    if previous is None or version is None or previous.get("version") != version \
            or previous.get("seq") != snapshot.get("prev_seq"):
        return None
    if any(previous.get(k) != v for k, v in snapshot.items() if k not in CONFIRM_FIELDS and k != "sections"):
        return None
    fresh = with_freshness(snapshot, ttl_s)
    held = previous.get("sections", {})
    moved: dict[str, list[Any]] = {}
    for name, section in snapshot["sections"].items():
        before = held.get(name)
        if before is None:
            return None
        if (before.get("as_of"), before.get("source")) != (section["as_of"], section["source"]):
            moved[name] = [section["as_of"], section["source"], fresh["sections"][name]["stale"]]
    message: dict[str, Any] = {"type": "confirm", "account_index": snapshot["account_index"]}
    message.update({k: snapshot.get(k) for k in CONFIRM_FIELDS})
    message.update({"age_ms": fresh["age_ms"], "stale": fresh["stale"], "sections": moved})
    return encode(message)


def patch_update(change: Change, previous: Snapshot | None, ttl_s: float) -> str | None:
    """The same update as `update()` for a client holding `previous` (the account at the change's `prev_seq`),
    carrying a JSON Patch (app/ws/patches.py) instead of the account; None when `previous` is not that version."""
    snapshot = change.snapshot
    prev_seq = snapshot.get("prev_seq")
    if previous is None or prev_seq is None or previous.get("seq") != prev_seq:
        return None
    ops = patches.diff(previous, snapshot)
    # Ages count from when a message was received, so every age (and stale flag) is sent again, not only those
    # of the sections that changed: the patched account then equals what a full update would have carried.
    # ("add" on an existing member replaces it, and is valid on a section the diff just added.)
    fresh = with_freshness(snapshot, ttl_s)
    ops += [{"op": "add", "path": "/age_ms", "value": fresh["age_ms"]},
            {"op": "add", "path": "/stale", "value": fresh["stale"]}]
    for name, section in fresh["sections"].items():
        ops += [{"op": "add", "path": f"/sections/{name}/age_ms", "value": section["age_ms"]},
                {"op": "add", "path": f"/sections/{name}/stale", "value": section["stale"]}]
    return encode({"type": "update", "seq": snapshot.get("seq", 0), "prev_seq": prev_seq,
                   "account_index": snapshot["account_index"], "patch": ops})


def status(view: dict[str, Any]) -> str:
    return encode({"type": "status", "status": view})


def heartbeat(seq: int) -> str:
    return encode({"type": "heartbeat", "server_time": now_ms(), "seq": seq})


def subscribed(accounts: list[int] | None) -> str:
    return encode({"type": "subscribed", "accounts": accounts})


def error(code: str, message: str, retry_after_s: int | None = None) -> str:
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if retry_after_s is not None:
        body["retry_after_s"] = retry_after_s
    return encode(body)


def parse_accounts(value: Any, limit: int = 1000) -> list[int] | None:
    """A client's account list: ints in int64 range, at most `limit`; None when the value is not that."""
    if not isinstance(value, list) or len(value) > limit:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 for v in value):
        return None
    return list(dict.fromkeys(value))
