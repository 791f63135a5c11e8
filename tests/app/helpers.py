"""Shared by the web tests."""
from __future__ import annotations

FRESHNESS = ("age_ms", "stale")


def without_freshness(body: dict) -> dict:
    """An account body (REST, /ws) minus what is computed at read time: what the store holds."""
    out = {k: v for k, v in body.items() if k not in FRESHNESS}
    out["sections"] = {n: {k: v for k, v in s.items() if k not in FRESHNESS} for n, s in body["sections"].items()}
    return out
