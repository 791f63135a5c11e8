"""The figures /metrics computes at scrape time, as prometheus collectors (app/metrics.py registers them):

- `LiveCollector`: this process's clients per route, frames and bytes sent, backlogs, request latency (the counts
  `Metrics` keeps in plain numbers on the hot paths);
- `StoreCollector`: the worker's state from its status record, and each account's data age, staleness and values,
  read from the store (one status read and one accounts read per scrape).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.status import worker_view
from core.settings import Settings
from core.snapshot import Snapshot, now_ms, with_freshness
from core.store import StatusRecord, Store

if TYPE_CHECKING:
    from app.metrics import Metrics
    from app.ws.hub import Hub

log = logging.getLogger(__name__)

WS_STATES = ("connecting", "connected", "backoff", "readonly", "rest-only")  # worker.states.WsState values


class LiveCollector:
    """This process's figures computed at scrape time: clients per route, frames and bytes sent, backlogs (bytes
    the kernel has not taken yet, the bound WEB_WS_BACKLOG_BYTES applies to)."""

    def __init__(self, hub: Hub, metrics: Metrics) -> None:
        self.hub = hub
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        clients = GaugeMetricFamily("lb_ws_clients", "Connected WebSocket clients", labels=["route"])
        counts = dict.fromkeys(self.metrics.sent_counts(), 0)  # every route, with or without clients
        for client in self.hub.clients:
            counts[client.route] = counts.get(client.route, 0) + 1
        for route, count in counts.items():
            clients.add_metric([route], count)
        frames = CounterMetricFamily("lb_ws_frames_sent", "Frames written (or queued) to WebSocket clients",
                                     labels=["route"])
        sent_bytes = CounterMetricFamily("lb_ws_sent_bytes", "Bytes written (or queued) to WebSocket clients",
                                         labels=["route"])
        for route, sent in self.metrics.sent_counts().items():
            frames.add_metric([route], sent.frames)
            sent_bytes.add_metric([route], sent.bytes)
        depths = [c.conn.backlog for c in self.hub.clients]
        total = GaugeMetricFamily("lb_ws_backlog_bytes", "Bytes waiting for the kernel across WebSocket clients")
        total.add_metric([], sum(depths))
        deepest = GaugeMetricFamily("lb_ws_backlog_bytes_max", "Largest WebSocket client backlog")
        deepest.add_metric([], max(depths, default=0))
        latency = HistogramMetricFamily("lb_http_request_duration_seconds", "HTTP request latency by route and status",
                                        labels=["route", "status"])
        for (route, status), series in sorted(self.metrics.latencies().items()):
            latency.add_metric([route, status], series.buckets(), series.sum)
        yield from (clients, frames, sent_bytes, total, deepest, latency)


def _number(value: Any) -> float | None:
    """Lighter sends amounts as decimal strings; anything unreadable is left out, not reported as 0."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return float(number) if number.is_finite() else None


def account_values(snapshot: Snapshot) -> dict[str, float]:
    """Equity (total asset value), unrealized PnL (sum over positions) and margin usage (a ratio) of one
    snapshot, as far as its sections hold them."""
    sections: dict[str, Any] = dict(snapshot.get("sections") or {})
    values: dict[str, float] = {}
    summary = sections.get("summary", {}).get("data") or {}
    equity = _number(summary.get("total_asset_value")) if isinstance(summary, dict) else None
    if equity is not None:
        values["equity"] = equity
    positions = sections.get("positions", {}).get("data")
    if isinstance(positions, list):
        pnls = [_number(p.get("unrealized_pnl")) for p in positions if isinstance(p, dict)]
        if all(p is not None for p in pnls):
            values["upnl"] = sum(p for p in pnls if p is not None)
    stats = sections.get("stats", {}).get("data") or {}
    usage = _number(stats.get("margin_usage")) if isinstance(stats, dict) else None
    if usage is not None:
        values["margin_usage"] = usage / 100  # Lighter's user_stats give it in percent
    return values


class StoreCollector:
    """The worker's and the accounts' figures, read from the store at scrape time: one status read and one
    accounts read per scrape. A store outage empties them (`lb_store_up` says why); the scrape still answers."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.names = {a.account_index: a.name for a in settings.accounts}

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("lb_store_up", "1 when this web process can read the store")
        try:
            status = self.store.status()
            snapshots = self.store.accounts()
        except Exception as exc:  # noqa: BLE001 - a store outage must not break the scrape
            log.debug("metrics: store unreadable: %s", exc)
            up.add_metric([], 0)
            yield up
            yield from worker_families(None, now_ms())
            return
        up.add_metric([], 1)
        yield up
        now = now_ms()
        yield from worker_families(status, now)
        yield from self.account_families(status, snapshots, now)

    def name(self, status: StatusRecord | None, index: int) -> str:
        """The account's name (Lighter_{N}_{NAME}_*): from the worker's record, else our own settings, else the
        index (a web without the account variables still gets every figure)."""
        record = ((status or {}).get("accounts") or {}).get(str(index)) or {}
        return str(record.get("name") or self.names.get(index) or index)

    def account_families(self, status: StatusRecord | None, snapshots: Iterable[Snapshot],
                         now: int) -> Iterator[Metric]:
        labels = ["account", "name"]
        age = GaugeMetricFamily("lb_account_data_age_seconds", "Age of the account's newest upstream data",
                                labels=labels)
        stale = GaugeMetricFamily("lb_account_stale", "1 when a section of the account is older than CACHE_TTL",
                                  labels=labels)
        equity = GaugeMetricFamily("lb_account_equity_usdc", "Total asset value", labels=labels)
        upnl = GaugeMetricFamily("lb_account_unrealized_pnl_usdc", "Unrealized PnL over open positions",
                                 labels=labels)
        usage = GaugeMetricFamily("lb_account_margin_usage_ratio", "Initial margin over total asset value",
                                  labels=labels)
        for snapshot in snapshots:
            index = int(snapshot["account_index"])
            key = [str(index), self.name(status, index)]
            body = with_freshness(snapshot, self.settings.cache_ttl, now)
            if body.get("age_ms") is not None:
                age.add_metric(key, float(body["age_ms"] or 0) / 1000)
            stale.add_metric(key, 1 if body["stale"] else 0)
            if self.settings.metrics_account_values:
                values = account_values(snapshot)
                for family, name in ((equity, "equity"), (upnl, "upnl"), (usage, "margin_usage")):
                    if name in values:
                        family.add_metric(key, values[name])
        yield from (age, stale)
        if self.settings.metrics_account_values:
            yield from (equity, upnl, usage)


def worker_families(status: StatusRecord | None, now: int) -> Iterator[Metric]:
    """The worker's state from its status record (schema in docs/worker.md)."""
    view = worker_view(status, now)
    up = GaugeMetricFamily("lb_worker_up", "1 while the worker's heartbeat is fresh")
    up.add_metric([], 1 if view["up"] else 0)
    yield up
    if status is None:
        return
    age = GaugeMetricFamily("lb_worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat")
    age.add_metric([], view["heartbeat_age_ms"] / 1000)
    role = GaugeMetricFamily("lb_worker_role", "1 for the worker's current role (active, standby)",
                             labels=["role"])
    role.add_metric([str(status.get("role") or "active")], 1)
    epoch = GaugeMetricFamily("lb_worker_epoch", "Writer tenure: increases when another worker takes over")
    epoch.add_metric([], float(status.get("epoch") or 0))
    yield from (age, role, epoch)
    yield from egress_families(status.get("egresses") or [])


def egress_families(egresses: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["egress"]
    state = GaugeMetricFamily("lb_upstream_ws_state", "1 for the egress's upstream WebSocket state",
                              labels=["egress", "state"])
    requests = CounterMetricFamily("lb_upstream_requests", "REST requests sent upstream", labels=labels)
    limited = CounterMetricFamily("lb_upstream_rate_limited", "Upstream 429 answers", labels=labels)
    used = GaugeMetricFamily("lb_upstream_budget_used_ratio", "Share of the REST budget used in the last window",
                             labels=labels)
    interval = GaugeMetricFamily("lb_upstream_poll_interval_seconds", "Effective REST poll interval",
                                 labels=["egress", "kind"])
    for egress in egresses:
        name = str(egress.get("id"))
        current = str((egress.get("ws") or {}).get("state"))
        for known in WS_STATES if current in WS_STATES else (*WS_STATES, current):
            state.add_metric([name, known], 1 if known == current else 0)
        requests.add_metric([name], float(egress.get("requests") or 0))
        limited.add_metric([name], float(egress.get("rate_limited") or 0))
        budget = egress.get("budget") or {}
        if budget.get("per_minute"):
            used.add_metric([name], float(budget.get("used_last_minute") or 0) / float(budget["per_minute"]))
        for kind, seconds in (egress.get("intervals") or {}).items():
            if kind in ("poll", "orders") and seconds is not None:
                interval.add_metric([name, kind], float(seconds))
    yield from (state, requests, limited, used, interval)
