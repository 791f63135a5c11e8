"""Operating the web: readiness (`/ready`), one log line when the worker or the store goes down or comes back, and
CORS for browser clients on other origins.

- `/health` (app/rest/api.py) is liveness: 200 while the process serves, whatever the store does. A platform
  restarts a process that fails it, and restarting cannot fix a store outage.
- `/ready` is readiness: 200 only when the store is reachable and populated (the worker has written the tracked
  list). A deploy with a wrong REDIS_URL never passes it, so it never takes traffic (docs/deploy.md). The worker's
  heartbeat is reported but does not fail readiness: with the worker down the web still serves the last data,
  flagged stale, which is better than no answer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gevent
import orjson
from flask import Flask, Response, request
from gevent import monkey

from app.status import worker_view
from core.logs import fields
from core.settings import Settings
from core.snapshot import now_ms
from core.store import StatusRecord, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """What the web sees of the store and the worker at one moment (worker_up is None while the store is down)."""

    store_up: bool
    worker_up: bool | None


def observe(store: Store) -> tuple[Health, StatusRecord | None, bool]:
    """(health, the worker's status record, populated); never raises."""
    try:
        status = store.status()
        populated = store.populated()
    except Exception as exc:  # noqa: BLE001 - an unreachable store is the answer, not an error
        log.debug("health: store unreachable: %s", exc)
        return Health(False, None), None, False
    return Health(True, bool(worker_view(status, now_ms())["up"])), status, populated


class Transitions:
    """Logs one line per change of the store's or the worker's state, as this process notices it. The first
    observation only sets the baseline (a web starting next to a live worker logs nothing); the worker's state is
    remembered across a store outage (it cannot be read then)."""

    def __init__(self) -> None:
        self.store_up: bool | None = None
        self.worker_up: bool | None = None

    def update(self, now: Health) -> list[str]:
        """Log and return the events `now` brings: store_down, store_up, worker_down, worker_up."""
        events = []
        if self.store_up is not None and now.store_up != self.store_up:
            events.append("store_up" if now.store_up else "store_down")
        if now.worker_up is not None:
            if self.worker_up is not None and now.worker_up != self.worker_up:
                events.append("worker_up" if now.worker_up else "worker_down")
            self.worker_up = now.worker_up
        self.store_up = now.store_up
        for event in events:
            level = logging.INFO if event.endswith("_up") else logging.WARNING
            log.log(level, MESSAGES[event], extra=fields(event=event))
        return events


MESSAGES = {"store_down": "store unreachable from this web process", "store_up": "store reachable again",
            "worker_down": "worker heartbeat lost: data will turn stale", "worker_up": "worker heartbeat is back"}


class Monitor:
    """One greenlet per web process, started on the first request (after gunicorn's fork), checking every
    `every_s` seconds."""

    def __init__(self, store: Store, every_s: float) -> None:
        self.store = store
        self.every_s = every_s
        self.transitions = Transitions()
        self._greenlet: gevent.Greenlet | None = None

    def ensure_started(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            self.transitions.update(observe(self.store)[0])
            gevent.sleep(self.every_s)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)


def readiness(store: Store) -> tuple[int, dict[str, Any]]:
    health, _status, populated = observe(store)
    ready = health.store_up and populated
    body: dict[str, Any] = {"ready": ready, "store_reachable": health.store_up, "store_populated": populated,
                            "worker_up": bool(health.worker_up)}
    if not health.store_up:
        body["reason"] = "store unreachable (check REDIS_URL)"
    elif not populated:
        body["reason"] = "the worker has not written the store yet"
    return (200 if ready else 503), body


def init_app(app: Flask, settings: Settings, store: Store) -> Monitor:
    monitor = Monitor(store, settings.web.status_every_s)
    if monkey.is_module_patched("socket"):
        # gunicorn's gevent worker patches, then builds the app (after the fork): watch from now on, whatever the
        # requests (/ws upgrades and the REST shortcut never reach Flask's hooks). An unpatched process (an app
        # built in a test) starts it with its first request instead.
        monitor.ensure_started()

    @app.get("/ready")
    def ready() -> Response:
        status, body = readiness(store)
        response = Response(orjson.dumps(body), status=status, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.before_request
    def _monitor() -> Response | None:
        monitor.ensure_started()
        if settings.cors_origins and request.method == "OPTIONS":
            # A CORS preflight carries no token: answered here, before the token check and the rate limit
            # (flask-cors adds its headers after).
            return app.make_default_options_response()
        return None

    if settings.cors_origins:
        from flask_cors import CORS

        # Reading only (GET), with the bearer token in a header: no cookies, so no credentials mode.
        CORS(app, origins=list(settings.cors_origins), methods=["GET", "HEAD", "OPTIONS"],
             allow_headers=["Authorization", "If-None-Match"],
             expose_headers=["ETag", "X-Poll-Interval", "X-Data-As-Of", "X-Data-Age-Ms", "X-RateLimit-Limit",
                             "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After"],
             resources={r"/api/*": {}, r"/metrics": {}})
    return monitor
