"""Prometheus metrics for one web process (`/metrics`), named by Prometheus' conventions: base units (seconds,
bytes, ratios), `_total` only on counters, no `_created` series.

Three kinds of figures:
- this process's own (HTTP requests and latency, /ws and /stream clients, frames, bytes, drops), counted here in
  `Metrics` as they happen;
- the worker's, read from its status record at scrape time (app/collectors.py): nothing is pushed or kept here;
- the accounts', read from the store at scrape time (app/collectors.py): data age, stale, and (unless
  METRICS_ACCOUNT_VALUES=0) equity, unrealized PnL and margin usage, labelled with the account's name.
This module also serves them: `init_app` adds the /metrics route and times every Flask request.

Each gunicorn worker has its own registry, so with WEB_CONCURRENCY > 1 a scrape sees one worker at random: the
worker and account figures are the same from any of them, the per-process ones are samples (docs/api.md).
"""
from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Mapping
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)

from app.collectors import LiveCollector, StoreCollector
from app.errors import error_response
from core.settings import Settings
from core.store import Store

if TYPE_CHECKING:
    from app.ws.hub import Hub

# A `_created` sample per counter doubles the series for a figure Prometheus derives itself (process start).
disable_created_metrics()

WS_ROUTE = "/ws"
STREAM_ROUTE = "/stream"
# Request latency buckets (seconds): a shortcut 200 takes ~0.2 ms, a store read a few ms, a slow store seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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

    For app/ws and app/compat, one line each: `metrics.sent_tally(route)` once per client, bumped on every write,
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
    def sent_tally(self, route: str) -> _Sent:
        """The route's frames/bytes tally itself, for a writer that bumps it once per write (the fan-out's hot path:
        a method call per delivery was a tenth of a pass)."""
        return self._sent[route]

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
