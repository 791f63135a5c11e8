"""REST for alerts (docs/alerts.md): GET /api/alerts (rules, destinations, last fired, the delivery log) and
POST /api/alerts/test (a test message to each destination; needs API_TOKEN set and presented).

Same token rule and rate limit as the rest of /api. Destination URLs and secrets are never served: a destination
shows its name, kind and URL scheme only. The web reads the outbox; the worker writes it.
"""
from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app, request
from gevent import monkey

from app import auth
from app.alerts_status import AlertsSection
from app.alerts_watch import WorkerDownWatch
from app.errors import error_response
from app.services import of, services
from core.alerts.deliver import payload, send, warm_up
from core.alerts.evaluate import SERVICE, Alert, alert_id
from core.alerts.outbox import AlertOutbox
from core.history.db import DB_ERRORS, HistoryDB
from core.settings import Settings
from core.snapshot import now_ms

log = logging.getLogger(__name__)
alerts = Blueprint("alerts", __name__, url_prefix="/api")
_DB_KEY = "lighter_broadcaster_alerts_db"
_WATCH_KEY = "lighter_broadcaster_worker_down_watch"
QUIET = "quiet"  # a rule's state before it ever fired (else: its newest alert's status: pending, delivered, failed)
DELIVERY_LOG_ROWS = 50  # the newest outbox rows GET /api/alerts shows


def outbox_of(app: Flask, settings: Settings) -> AlertOutbox:
    """The process's outbox reader, opened on first use (after gunicorn's fork), shared by the routes, the status
    section and the worker_down watcher."""
    db: HistoryDB | None = app.extensions.get(_DB_KEY)
    if db is None:
        db = HistoryDB(settings.history.database_url.reveal())
        app.extensions[_DB_KEY] = db
    return AlertOutbox(db)


def _outbox() -> AlertOutbox:
    return outbox_of(current_app, services().settings)


@alerts.before_request
def _require_token() -> Response | None:
    if not auth.authorized(services().settings, request):
        return error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    return None


@alerts.get("/alerts")
def view() -> Response:
    settings = services().settings.alerts
    body: dict[str, Any] = {
        "enabled": settings.enabled,
        "destinations": [d.public() for d in settings.rules.destinations.values()],
        "rules": [r.public() for r in settings.rules.rules],
        "pending": None, "deliveries": [], "outbox": "unavailable",
    }
    watch: WorkerDownWatch | None = current_app.extensions.get(_WATCH_KEY)
    for rule in body["rules"]:
        rule.update(last_fired=None, state=None)
        if rule["when"] == "worker_down" and watch is not None:
            # What this process's watcher saw at its last check (every ALERTS_TICK_S).
            rule["worker_silent_s"] = watch.silent_s
    if settings.enabled:
        try:
            outbox = _outbox()
            states = outbox.rule_states()
            body["deliveries"] = outbox.log(DELIVERY_LOG_ROWS)
            body["pending"] = outbox.pending_count()
            body["outbox"] = "ok"
            for rule in body["rules"]:
                newest = states.get(rule["name"], {})
                rule["last_fired"] = newest.get("last_fired")
                rule["state"] = newest.get("status", QUIET)
        except DB_ERRORS as exc:
            # Not migrated yet (the worker creates the table) or the database is away: the rules still show.
            log.warning("alerts outbox read failed: %s", type(exc).__name__)
    response = Response(orjson.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    return response


@alerts.post("/alerts/test")
def test() -> Response:
    current = services().settings
    if current.api_token is None:
        return error_response(403, "POST /api/alerts/test needs API_TOKEN to be set")
    settings = current.alerts
    if not settings.enabled:
        return error_response(409, "no alert rules configured (ALERTS or ALERTS_FILE)")
    at = now_ms()
    results = []
    for destination in settings.rules.destinations.values():
        alert = Alert(id=alert_id("test", destination.name, at), rule="test", when="test", account=SERVICE, at=at,
                      values={"message": "a test message from POST /api/alerts/test"}, to=(destination.name,))
        body = orjson.dumps(payload(alert, None, settings.public_url)).decode()
        outcome = send(destination, alert.id, body, settings.timeout_s)
        results.append({"destination": destination.name, "kind": destination.kind, "ok": outcome.ok,
                        "status_code": outcome.code, "error": outcome.error, "id": alert.id})
    status = 200 if all(r["ok"] for r in results) else 502
    return Response(orjson.dumps({"results": results}), status=status, mimetype="application/json")


def init_app(app: Flask, settings: Settings, limiter: Any) -> None:
    limiter.limit(settings.rate_limit)(alerts)
    if any(d.kind == "apprise" for d in settings.alerts.rules.destinations.values()):
        warm_up()  # at app creation, not inside the first POST /api/alerts/test (CPU-bound plugin loading)
    app.register_blueprint(alerts)
    built = of(app)
    built.status.alerts = AlertsSection(settings.alerts, lambda: outbox_of(app, settings),
                                        max(1.0, settings.web.status_every_s))
    watch = WorkerDownWatch(built.store, settings.alerts, lambda: outbox_of(app, settings))
    if watch.enabled:
        app.extensions[_WATCH_KEY] = watch
        if monkey.is_module_patched("socket"):
            # gunicorn's gevent worker patches, then builds the app (after the fork): watch from now on, requests
            # or not. An unpatched process (an app built in a test) starts it with its first request instead.
            watch.ensure_started()

        @app.before_request
        def _watch() -> None:
            watch.ensure_started()


# -- OpenAPI (merged into /api/openapi.json by app/rest/openapi.py) ---------------------------------------------
_OBJ = {"type": "object"}
_INT_N = {"type": "integer", "nullable": True}
SCHEMAS: dict[str, Any] = {
    "AlertDelivery": {"type": "object", "required": ["id", "event_id", "destination", "rule", "status", "attempts"],
                      "properties": {"id": {"type": "integer"}, "event_id": {"type": "string"},
                                     "destination": {"type": "string"}, "rule": {"type": "string"},
                                     "account_index": {"type": "integer"}, "created_ms": {"type": "integer"},
                                     "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                                     "attempts": {"type": "integer"}, "next_at_ms": {"type": "integer"},
                                     "last_code": _INT_N, "last_error": {"type": "string", "nullable": True},
                                     "delivered_ms": _INT_N}},
    "Alerts": {"type": "object", "required": ["enabled", "destinations", "rules", "deliveries", "outbox"],
               "properties": {"enabled": {"type": "boolean"},
                              "destinations": {"type": "array", "items": _OBJ,
                                               "description": "name, kind, URL scheme (never the URL)"},
                              "rules": {"type": "array", "items": _OBJ,
                                        "description": "each rule as configured, with last_fired (ms or null), "
                                                       "state (quiet, or its newest alert's status: pending, "
                                                       "delivered, failed) and, for worker_down, worker_silent_s"},
                              "pending": _INT_N,
                              "deliveries": {"type": "array",
                                             "items": {"$ref": "#/components/schemas/AlertDelivery"}},
                              "outbox": {"type": "string", "enum": ["ok", "unavailable"]}}},
    "AlertTest": {"type": "object", "required": ["results"],
                  "properties": {"results": {"type": "array", "items": _OBJ}}},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_paths(errors: Any) -> dict[str, Any]:
    """`errors(*statuses)` is openapi.py's error-response builder."""
    def json(schema: str, description: str) -> dict[str, Any]:
        return {"description": description,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}
    return {
        "/api/alerts": {"get": {"summary": "Alert rules, destinations (redacted), last fired, the delivery log "
                                           "(docs/alerts.md)",
                                "responses": {"200": json("Alerts", "Alerts"), **errors(401, 429)}}},
        "/api/alerts/test": {"post": {"summary": "Send a test message to each destination (needs API_TOKEN)",
                                      "responses": {"200": json("AlertTest", "Every destination took it"),
                                                    "502": json("AlertTest", "Some destination failed"),
                                                    "403": _error("API_TOKEN is not set"),
                                                    "409": _error("No alert rules configured"),
                                                    **errors(401, 429)}}},
    }
