"""Registry of injected faults, scoped to REST paths and WS channels (pure apart from an asyncio.Event
per fault that lets hung requests wake up when the fault is cleared)."""
from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import Any

REST_KINDS = {"http_5xx", "latency", "hang", "malformed_json", "schema_drift", "rate_limit_storm"}
WS_KINDS = {"ws_drop", "ws_silence", "ws_shutdown", "refuse_upgrade", "latency", "schema_drift"}
KINDS = REST_KINDS | WS_KINDS


@dataclass
class Fault:
    """One active fault. A scope of '*' matches everything; a list matches the named paths/channels."""

    id: str
    kind: str
    rest: list[str] | str
    ws: list[str] | str
    duration_s: float | None
    params: dict[str, Any]
    created: float
    ended: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def expires_at(self) -> float | None:
        return None if self.duration_s is None else self.created + self.duration_s

    def remaining(self, now: float) -> float | None:
        return None if self.duration_s is None else max(0.0, self.created + self.duration_s - now)

    def matches_rest(self, path: str) -> bool:
        return self.rest == "*" or path in self.rest

    def matches_ws(self, channels: set[str]) -> bool:
        """`channels` holds a connection's subscriptions in '/' form; scope names may be
        channel kinds ('account_all') or full channels ('account_all/123')."""
        if self.ws == "*":
            return True
        return any(c in self.ws or c.split("/", 1)[0] in self.ws for c in channels)

    def to_json(self, now: float) -> dict:
        return {"id": self.id, "kind": self.kind, "scope": {"rest": self.rest, "ws": self.ws},
                "duration_s": self.duration_s, "remaining_s": self.remaining(now), "params": self.params}


def _scope(value: Any, name: str) -> list[str] | str:
    if value is None:
        return []
    if value == "*":
        return "*"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"scope.{name} must be '*' or a list of strings")


class FaultRegistry:
    """Active faults by id; expired ones are dropped lazily on every query."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._ids = itertools.count(1)

    def add(self, kind: str, scope: dict | None, duration_s: float | None, params: dict | None,
            now: float) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(KINDS)}")
        scope = scope or {}
        if duration_s is not None and (not isinstance(duration_s, (int, float)) or duration_s < 0):
            raise ValueError("duration_s must be a non-negative number or null")
        rest, ws = _scope(scope.get("rest"), "rest"), _scope(scope.get("ws"), "ws")
        if not rest and not ws:
            # An unscoped fault applies wherever its kind makes sense.
            rest = "*" if kind in REST_KINDS else []
            ws = "*" if kind in WS_KINDS else []
        fault = Fault(f"f{next(self._ids)}", kind, rest, ws, duration_s, dict(params or {}), now)
        self._faults[fault.id] = fault
        return fault

    def remove(self, fault_id: str) -> bool:
        fault = self._faults.pop(fault_id, None)
        if fault:
            fault.ended.set()
        return fault is not None

    def clear(self) -> None:
        for fid in list(self._faults):
            self.remove(fid)

    def active(self, now: float) -> list[Fault]:
        for fault in list(self._faults.values()):
            if fault.expires_at is not None and fault.expires_at <= now:
                self.remove(fault.id)
        return list(self._faults.values())

    def rest(self, path: str, now: float) -> list[Fault]:
        return [f for f in self.active(now) if f.kind in REST_KINDS and f.matches_rest(path)]

    def ws(self, kind: str, channels: set[str], now: float) -> list[Fault]:
        return [f for f in self.active(now) if f.kind == kind and f.matches_ws(channels)]
