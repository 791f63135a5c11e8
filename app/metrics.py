"""Prometheus metrics for one web process (`/metrics`).

Each gunicorn worker has its own registry, so with WEB_CONCURRENCY > 1 a scrape sees one worker at random:
scrape each instance with one worker, or read the counters as per-process samples (docs/api.md).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from app import auth
from app.errors import error_response
from core.settings import Settings
from core.snapshot import now_ms
from core.store import Store

if TYPE_CHECKING:
    from app.ws.hub import Hub

log = logging.getLogger(__name__)


class Metrics:
    """The process's metric objects, registered in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.clients = Gauge("lb_ws_clients", "Connected /ws clients", registry=r)
        # Bumped once per frame per client on the fan-out's hot path: a plain int (a prometheus Counter takes a
        # lock per inc), reported at scrape time by LiveCollector as lb_ws_messages_sent_total.
        self.frames_sent = 0
        self.messages_dropped = Counter("lb_ws_messages_dropped", "Queued frames dropped when a client was closed",
                                        registry=r)
        self.clients_dropped = Counter("lb_ws_clients_dropped", "Clients closed by the server", ["reason"],
                                       registry=r)
        self.changes = Counter("lb_feed_changes", "Store changes fanned out by this process", registry=r)
        self.resyncs = Counter("lb_feed_resyncs", "Resyncs sent to all clients (feed gap, store outage)", registry=r)
        self.requests = Counter("lb_http_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=r)


class LiveCollector:
    """Values computed at scrape time: queue depths and the age of each account's snapshot."""

    def __init__(self, hub: Hub, store: Store, metrics: Metrics) -> None:
        self.hub = hub
        self.store = store
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        hub = self.hub
        yield CounterMetricFamily("lb_ws_messages_sent", "Frames sent (or waiting to be sent) to /ws clients",
                                  value=self.metrics.frames_sent)
        depths = [c.conn.backlog for c in hub.clients]
        total = GaugeMetricFamily("lb_ws_queue_depth_total", "Frames waiting for the kernel across /ws clients")
        total.add_metric([], sum(depths))
        deepest = GaugeMetricFamily("lb_ws_queue_depth_max", "Longest /ws client backlog")
        deepest.add_metric([], max(depths, default=0))
        age = GaugeMetricFamily("lb_snapshot_age_seconds", "Age of each account's newest upstream data",
                                labels=["account"])
        now = now_ms()
        try:
            for snapshot in self.store.accounts():
                as_of = snapshot.get("as_of")
                if as_of is not None:
                    age.add_metric([str(snapshot["account_index"])], max(0, now - as_of) / 1000)
        except Exception as exc:  # noqa: BLE001 - a store outage must not break the scrape; ages go missing
            log.debug("metrics: store unreadable: %s", exc)
        yield from (total, deepest, age)


def init_app(app: Flask, metrics: Metrics, settings: Settings, hub: Hub, store: Store) -> None:
    metrics.registry.register(LiveCollector(hub, store, metrics))
    bp = Blueprint("metrics", __name__)

    @bp.get("/metrics")
    def scrape() -> Response:
        # Same token as the API when one is set: ages and client counts are not for everyone.
        if not auth.authorized(settings, request):
            return error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return Response(generate_latest(metrics.registry), mimetype=CONTENT_TYPE_LATEST)

    app.register_blueprint(bp)

    @app.after_request
    def _count(response: Response) -> Response:
        # The rule, not the path: /api/accounts/<index> is one series however many indexes get probed.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(route=route, status=str(response.status_code)).inc()
        return response
