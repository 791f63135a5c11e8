"""Prometheus metrics for one web process (`/metrics`), named by Prometheus' conventions: base units (seconds,
bytes, ratios), `_total` only on counters, no `_created` series.

Three kinds of figures:
- this process's own (HTTP requests and latency, /ws and /stream clients, frames, bytes, drops), in `Metrics`;
- the worker's, read from its status record at scrape time (`WorkerCollector`): nothing is pushed or kept here;
- the accounts', read from the store at scrape time (`AccountCollector`): data age, stale, and (unless
  METRICS_ACCOUNT_VALUES=0) equity, unrealized PnL and margin usage, labelled with the account's name.

Each gunicorn worker has its own registry, so with WEB_CONCURRENCY > 1 a scrape sees one worker at random: the
worker and account figures are the same from any of them, the per-process ones are samples (docs/api.md).
"""
from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.errors import error_response
from app.status import worker_view
from core.settings import Settings
from core.snapshot import Snapshot, now_ms, with_freshness
from core.store import StatusRecord, Store

if TYPE_CHECKING:
    from app.ws.hub import Hub

log = logging.getLogger(__name__)
# A `_created` sample per counter doubles the series for a figure Prometheus derives itself (process start).
disable_created_metrics()

WS_ROUTE = "/ws"
STREAM_ROUTE = "/stream"
# Request latency buckets (seconds): a shortcut 200 takes ~0.2 ms, a store read a few ms, a slow store seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WS_STATES = ("connecting", "connected", "backoff", "readonly", "rest-only")  # worker.states.WsState values


class _Sent:
    """Frames and bytes written to one route's clients: plain ints, bumped on the fan-out's hot path (a
    prometheus Counter takes a lock per inc), reported at scrape time."""

    __slots__ = ("frames", "bytes")

    def __init__(self) -> None:
        self.frames = 0
        self.bytes = 0


class Latency:
    """One histogram series (route, status): bucket counts and a sum in plain numbers, bumped per request on the
    REST fast path (prometheus' Histogram takes two locks per observation: ~10 % of a 304's CPU), reported at
    scrape time by LiveCollector in Prometheus' histogram form."""

    __slots__ = ("counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)  # per bucket, not cumulative; the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.sum += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as Prometheus' exposition wants them."""
        pairs, total = [], 0
        for bound, count in zip((*(str(b) for b in LATENCY_BUCKETS), "+Inf"), self.counts, strict=True):
            total += count
            pairs.append((bound, float(total)))
        return pairs


class Metrics:
    """The process's metric objects, in a registry of their own (one per app).

    For app/ws and app/compat, one line each: `metrics.sent(route, frames, nbytes)` for every write,
    `metrics.dropped(route, reason)` when the server closes a client, `metrics.frames_dropped(route, n)` for
    queued frames thrown away with it.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # The hub sets it; the scrape reports clients per route from the hub itself (LiveCollector), so this
        # one stays out of the registry.
        self.clients = Gauge("lb_ws_clients", "Connected WebSocket clients", registry=None)
        self._sent: dict[str, _Sent] = {WS_ROUTE: _Sent(), STREAM_ROUTE: _Sent()}
        self.messages_dropped = Counter("lb_ws_frames_dropped", "Queued frames thrown away when a client was closed",
                                        ["route"], registry=r)
        self.clients_dropped = Counter("lb_ws_clients_dropped", "WebSocket clients closed or refused by the server",
                                       ["route", "reason"], registry=r)
        self.changes = Counter("lb_feed_changes", "Store changes fanned out by this process", registry=r)
        self.resyncs = Counter("lb_feed_resyncs", "Resyncs sent to all clients (feed gap, store outage)", registry=r)
        self.requests = Counter("lb_http_requests", "HTTP requests by route and status (WebSocket upgrades not "
                                "counted)", ["route", "status"], registry=r)
        self._latency: dict[tuple[str, str], Latency] = {}  # lb_http_request_duration_seconds, by (route, status)

    # -- one-line calls for the WebSocket code --------------------------------------------------------------------
    def sent(self, route: str, frames: int, nbytes: int) -> None:
        counts = self._sent[route]
        counts.frames += frames
        counts.bytes += nbytes

    def dropped(self, route: str, reason: str) -> None:
        self.clients_dropped.labels(route=route, reason=reason).inc()

    def frames_dropped(self, route: str, frames: int) -> None:
        self.messages_dropped.labels(route=route).inc(frames)

    @property
    def frames_sent(self) -> int:
        """Frames sent on every route together."""
        return sum(s.frames for s in self._sent.values())

    def sent_counts(self) -> Mapping[str, _Sent]:
        return self._sent

    def latency(self, route: str, status: str) -> Latency:
        series = self._latency.get((route, status))
        if series is None:
            series = self._latency[route, status] = Latency()
        return series

    def latencies(self) -> Mapping[tuple[str, str], Latency]:
        return self._latency

    def observe(self, route: str, status: str, seconds: float) -> None:
        """One answered HTTP request (Flask's, or the REST shortcut's)."""
        self.requests.labels(route=route, status=status).inc()
        self.latency(route, status).observe(seconds)


class LiveCollector:
    """This process's figures computed at scrape time: clients per route, frames and bytes sent, backlogs (bytes
    the kernel has not taken yet, the bound WEB_WS_BACKLOG_BYTES applies to)."""

    def __init__(self, hub: Hub, metrics: Metrics) -> None:
        self.hub = hub
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        clients = GaugeMetricFamily("lb_ws_clients", "Connected WebSocket clients", labels=["route"])
        counts = {WS_ROUTE: 0, STREAM_ROUTE: 0}
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


def metrics_authorized(settings: Settings, header: str) -> bool:
    """METRICS_TOKEN when set (a scrape token that cannot read orders), else API_TOKEN, else open."""
    import hmac

    from app import auth

    expected = settings.metrics_token or settings.api_token
    if expected is None:
        return True
    token = auth.bearer(header)
    return token is not None and hmac.compare_digest(token.encode(), expected.reveal().encode())


def init_app(app: Flask, metrics: Metrics, settings: Settings, hub: Hub, store: Store) -> None:
    metrics.registry.register(LiveCollector(hub, metrics))
    metrics.registry.register(StoreCollector(store, settings))
    bp = Blueprint("metrics", __name__)

    @bp.get("/metrics")
    def scrape() -> Response:
        if not metrics_authorized(settings, request.headers.get("Authorization", "")):
            return error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    app.register_blueprint(bp)

    @app.before_request
    def _start() -> None:
        g.lb_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        rule = request.url_rule
        if rule is not None and rule.websocket:
            return response  # an upgrade is not an HTTP answer (gevent-websocket reports it as 204)
        # The rule, not the path: /api/accounts/<index> is one series however many indexes get probed.
        route = rule.rule if rule is not None else "unmatched"
        started = g.get("lb_started")
        elapsed = time.perf_counter() - started if started is not None else 0.0
        metrics.observe(route, str(response.status_code), elapsed)
        return response
