"""What REST and /ws serve, built from the store: account bodies with freshness, ETags, the status view."""
from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

from core.snapshot import AccountBody, Snapshot, data_version, now_ms, with_freshness
from core.store import HEARTBEAT_DOWN_AFTER, StatusRecord, Store


def account_body(snapshot: Snapshot, ttl_s: float) -> AccountBody:
    """The account as served: the stored snapshot plus `age_ms`/`stale` computed now."""
    return with_freshness(snapshot, ttl_s)


def etag(version: int, stale: bool) -> str:
    """The ETag value: the content version (core/snapshot.py), so a confirmation (only `as_of` moved) keeps it and
    a poller gets its 304, with the freshness in headers (app/rest/conditional.py). Sent weak: `seq`, `as_of` and
    ages differ between two bodies of one version. Staleness is part of it so a poller whose copy turned stale
    gets a 200 saying so instead of a 304."""
    return f"{version}{'-stale' if stale else ''}"


def list_etag(bodies: list[AccountBody]) -> str:
    """Stable across processes (crc32, not hash()), so pollers keep their 304s behind a load balancer."""
    versions = ".".join(f"{b['account_index']}:{data_version(b)}" for b in bodies)
    return etag(zlib.crc32(versions.encode()), any(b["stale"] for b in bodies))


def oldest_as_of(bodies: list[AccountBody]) -> int | None:
    """How current a list is: its oldest account's `as_of` (None when one has never been confirmed)."""
    stamps = [b.get("as_of") for b in bodies]
    return None if not stamps or None in stamps else min(s for s in stamps if s is not None)


def worker_view(status: StatusRecord | None, now: int) -> dict[str, Any]:
    """The active writer (`role`, `epoch`: its tenure, which changes when another worker takes over)."""
    if status is None:
        return {"up": False, "pid": None, "started_at": None, "heartbeat_at": None, "heartbeat_age_ms": None,
                "role": None, "epoch": None}
    age = max(0, now - status.get("heartbeat_at", 0))
    # A worker that stopped cleanly writes one last status with a fresh heartbeat and `stopped_at`.
    up = age <= HEARTBEAT_DOWN_AFTER * 1000 and not status.get("stopped_at")
    return {"up": up, "pid": status.get("pid"),
            "started_at": status.get("started_at"), "heartbeat_at": status.get("heartbeat_at"),
            "heartbeat_age_ms": age, "role": status.get("role", "active"), "epoch": status.get("epoch")}


def standby_view(record: StatusRecord | None, active_pid: Any, now: int) -> dict[str, Any] | None:
    """The worker waiting to take over, if one says so (its record expires a few seconds after it stops)."""
    if not record or record.get("pid") == active_pid:
        return None  # no standby, or the record of a standby that has just become the writer
    age = max(0, now - record.get("heartbeat_at", 0))
    return {"up": age <= HEARTBEAT_DOWN_AFTER * 1000, "pid": record.get("pid"), "role": "standby",
            "started_at": record.get("started_at"), "heartbeat_age_ms": age}


def status_view(store: Store, ttl_s: float, clients: int, status: StatusRecord | None = None,
                snapshots: list[Snapshot] | None = None,
                alerts: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The /api/status body (also pushed to /ws clients as `status`). `alerts`: the alerts section
    (app/alerts_status.py), left out when not given."""
    now = now_ms()
    store.probe()  # a deleted directory reads as "nothing there": say unreachable, not empty
    status = store.status() if status is None else status
    read = store.accounts() if snapshots is None else snapshots
    per_worker = (status or {}).get("accounts") or {}
    accounts = {}
    for snapshot in read:
        body = with_freshness(snapshot, ttl_s, now)
        key = str(snapshot["account_index"])
        accounts[key] = {**per_worker.get(key, {}), "seq": body.get("seq", 0), "as_of": body.get("as_of"),
                         "age_ms": body["age_ms"], "stale": body["stale"], "public_only": body.get("public_only"),
                         "sections": {n: {"source": s.get("source"), "age_ms": s["age_ms"], "stale": s["stale"],
                                          "error": s.get("error")} for n, s in body["sections"].items()}}
    status = status or {}
    return {"server_time": now, "worker": worker_view(status or None, now),
            "standby": standby_view(store.standby(), status.get("pid"), now),
            "store": {"kind": store.kind, "reachable": True},
            "upstream": status.get("upstream"), "mode": status.get("mode"), "intervals": status.get("intervals"),
            "egresses": status.get("egresses", []), "accounts": accounts, "errors": status.get("errors", [])[-20:],
            "clients": {"websocket": clients}, "cache_ttl_s": ttl_s,
            "history": status.get("history"),  # the worker's history writer: backlog, drops, rows, size
            **({"alerts": alerts()} if alerts is not None else {})}


def unreachable_view(clients: int) -> dict[str, Any]:
    """The status pushed to /ws clients while the store cannot be read: nothing is known but that."""
    return {"server_time": now_ms(), "worker": worker_view(None, now_ms()), "standby": None,
            "store": {"reachable": False},
            "upstream": None, "mode": None, "intervals": None, "egresses": [], "accounts": {}, "errors": [],
            "clients": {"websocket": clients}}


class StatusCache:
    """The worker's status, read at most once per `max_age_s` per process (poll hints, /ws pushes)."""

    def __init__(self, store: Store, ttl_s: float, default_poll_s: float, max_age_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.default_poll_s = default_poll_s
        self.max_age_s = max_age_s
        self._status: StatusRecord | None = None
        self._read_at = float("-inf")
        self._poll: float | None = None
        self.alerts: Callable[[], dict[str, Any]] | None = None  # the alerts section, set by app/rest/alerts.py
        # The accounts from the process's mirror while it may be trusted, else None (then read from the store):
        # set by create_app (app.rest.reader.Reader.held_accounts). A status for a client that connects costs no
        # read and decode of every account.
        self.snapshots: Callable[[], list[Snapshot] | None] | None = None

    def raw(self) -> StatusRecord | None:
        if time.monotonic() - self._read_at > self.max_age_s:
            self._status = self.store.status()
            self._read_at = time.monotonic()
            self._poll = None  # derived from the record just read; recomputed once on next use
        return self._status

    def view(self, clients: int, fresh: bool = False) -> dict[str, Any]:
        if fresh:
            self._read_at = float("-inf")
        held = self.snapshots() if self.snapshots is not None else None
        return status_view(self.store, self.ttl_s, clients, status=self.raw(), snapshots=held, alerts=self.alerts)

    def poll_interval(self) -> float:
        """The useful poll interval: the worker's effective REST poll interval (nothing changes faster).
        Every REST response carries it: parsed once per status read, not once per request."""
        status = self.raw()
        if self._poll is None:
            try:
                intervals = (status or {}).get("intervals") or {}
                self._poll = float(intervals["poll"]["effective"])
            except (KeyError, TypeError, ValueError):
                self._poll = self.default_poll_s
        return self._poll
