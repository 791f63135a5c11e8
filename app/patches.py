"""Merge patches for compact /ws updates (docs/websocket.md, "Patch updates"): pure functions, no I/O.

The rule a client applies is the one of JSON Merge Patch (RFC 7396) without deletion: for each key of the patch,
if both the patch's value and the held value are objects, merge them the same way; otherwise the patch's value
replaces the held one (lists, scalars and null replace whole). A change that would need a key removed has no
patch: `diff` returns None and the server sends the full account instead. So `null` always means the value null.
"""
from __future__ import annotations

from typing import Any


def diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The smallest patch with `apply(old, patch) == new`, or None when `new` lacks a key `old` has."""
    patch: dict[str, Any] = {}
    for key in old:
        if key not in new:
            return None
    for key, value in new.items():
        held = old.get(key, _MISSING)
        if held is _MISSING:
            patch[key] = value
        elif isinstance(value, dict) and isinstance(held, dict):
            if value is held or value == held:
                continue
            inner = diff(held, value)
            if inner is None:
                return None
            patch[key] = inner
        elif held != value or type(held) is not type(value):  # 1 == 1.0 == True in Python, not on the wire
            patch[key] = value
    return patch


def apply(held: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A new document: `held` with `patch` merged in (the client's side; used by tests and the bench)."""
    out = dict(held)
    for key, value in patch.items():
        current = out.get(key)
        out[key] = apply(current, value) if isinstance(value, dict) and isinstance(current, dict) else value
    return out


_MISSING = object()
