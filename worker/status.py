"""The worker status record (schema 1, documented in docs/worker.md) and the per-minute summary log."""
from __future__ import annotations

import logging
from typing import Any

from core.logs import fields
from core.snapshot import now_ms
from core.store import StatusRecord
from worker.runtime import Runtime
from worker.states import worst_mode
from worker.upstream.budget import LIGHTER_WINDOW_S, UpstreamBudget
from worker.upstream.egress import Egress

log = logging.getLogger(__name__)
STATUS_SCHEMA = 1


def _intervals(rt: Runtime) -> dict[str, Any]:
    settings = rt.settings
    plans = [e.plan for e in rt.egresses if e.accounts]
    stretched = [p for p in plans if p.stretched]
    slowest = max(plans, key=lambda p: p.poll, default=None)
    return {
        "poll": {"configured": settings.poll_interval,
                 "effective": slowest.poll if slowest else settings.poll_interval},
        "orders": {"configured": settings.orders_interval,
                   "effective": max((p.orders for p in plans), default=settings.orders_interval)},
        "stretched": bool(stretched),
        "reason": stretched[0].reason if stretched else None,
    }


def _egress(rt: Runtime, egress: Egress) -> dict[str, Any]:
    ws = egress.ws
    return {
        "id": egress.id,
        "proxy": egress.proxy.redacted if egress.proxy else None,
        "accounts": [a.account_index for a in egress.accounts],
        "ws": {"state": ws.state, "since": ws.since, "last_frame_at": ws.last_frame_at,
               "reconnects": ws.reconnects, "mode": ws.mode},
        "budget": _budget(egress.budget),
        "intervals": {"poll": egress.plan.poll, "orders": egress.plan.orders, "stretched": egress.plan.stretched},
        "requests": egress.requests,
        "rate_limited": egress.rate_limited,
        "errors": egress.errors,
        "backoff_until": _backoff_until(rt, egress),
    }


def _budget(budget: UpstreamBudget) -> dict[str, Any]:
    """The keys say "minute", Lighter's window. A shortened window (tests) adds `window_s`: then both counts are
    per that window."""
    record: dict[str, Any] = {"per_minute": budget.per_window, "used_last_minute": budget.used()}
    if budget.window_s != LIGHTER_WINDOW_S:
        record["window_s"] = budget.window_s
    return record


def _backoff_until(rt: Runtime, egress: Egress) -> int | None:
    remaining = egress.budget.paused_until - rt.clock()
    return now_ms() + int(remaining * 1000) if remaining > 0 else None


def build_status(rt: Runtime) -> StatusRecord:
    """The record `store.put_status` writes every second (it adds `heartbeat_at`)."""
    return {
        "schema": STATUS_SCHEMA,
        "pid": rt.pid,
        "started_at": rt.started_at,
        "role": rt.role,                 # "active": the writer holding the lease (only the active writes status)
        "epoch": rt.epoch,               # the writer tenure; changes when another worker takes over
        "lease": {"ttl_s": rt.tuning.lease_ttl_s, "renew_s": rt.tuning.lease_renew_s},
        "upstream": {"base_url": rt.settings.lighter_base_url, "ws_url": rt.settings.lighter_ws_url,
                     "simulator": rt.simulator},
        "mode": worst_mode(e.ws.mode for e in rt.egresses if e.accounts),  # the worst mode of any egress
        "intervals": _intervals(rt),
        "egresses": [_egress(rt, e) for e in rt.egresses],
        "accounts": {str(i): {"name": rt.accounts[i].name, "group": rt.accounts[i].group,
                              "egress": s.egress, "public_only": rt.accounts[i].public_only,
                              "last_rest_at": s.last_rest_at, "last_ws_at": s.last_ws_at}
                     for i, s in rt.stats.items()},
        "store": {"kind": rt.store.kind, "healthy": rt.sink.healthy, "seq": rt.sink.seq,
                  "writes": rt.sink.writes},
        "errors": list(rt.recent_errors),
        "history": rt.history.status() if rt.history is not None else None,  # docs/history.md
    }


def log_summary(rt: Runtime, period_s: float) -> None:
    """One line per account per period instead of a line per request."""
    now = now_ms()
    for index, stats in rt.stats.items():
        state = rt.states[index]
        ages = {name: (now - s["as_of"]) / 1000 if s["as_of"] else None
                for name, s in state.snapshot["sections"].items() if s["data"] is not None}
        oldest = max((a for a in ages.values() if a is not None), default=None)
        flagged = sorted(n for n, s in state.snapshot["sections"].items() if s["error"])
        log.info("account %s via %s: last %.0fs %d requests, %d rate-limited, %d errors, %d ws frames; "
                 "oldest section %s; flagged %s", index, stats.egress, period_s, stats.requests,
                 stats.rate_limited, stats.errors, stats.ws_frames,
                 "n/a" if oldest is None else f"{oldest:.1f}s old", ",".join(flagged) or "none",
                 extra=fields(event="account_summary", account=index, egress=stats.egress))
        stats.reset_counters()
