"""Shared by the web tests."""
from __future__ import annotations

FRESHNESS = ("age_ms", "stale")


def without_freshness(body: dict) -> dict:
    """An account body (REST, /ws) minus what is computed at read time: what the store holds."""
    out = {k: v for k, v in body.items() if k not in FRESHNESS}
    out["sections"] = {n: {k: v for k, v in s.items() if k not in FRESHNESS} for n, s in body["sections"].items()}
    return out


def apply_confirm(held: dict, frame: dict) -> dict:
    """A /ws `confirm` frame applied to the account held, exactly as docs/websocket.md states the rule (the
    dashboard does the same in JS)."""
    import copy

    from app.ws.messages import CONFIRM_FIELDS
    account = copy.deepcopy(held)
    for key in CONFIRM_FIELDS + ("age_ms", "stale"):
        account[key] = frame[key]
    for name, (as_of, source, stale) in frame["sections"].items():
        account["sections"][name].update(as_of=as_of, source=source, stale=stale)
    for section in account["sections"].values():
        if section["as_of"] is not None and account["age_ms"] is not None:
            section["age_ms"] = max(0, account["as_of"] + account["age_ms"] - section["as_of"])
    return account
