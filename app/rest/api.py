"""REST: /health and /api/* — from the store (the hub's mirror of it while in sync), with ETags and poll hints."""
from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, abort, current_app, g, request

from app import auth
from app.errors import error_response
from app.feed.mirror import Mirror
from app.status import account_body, etag, list_etag, worker_view
from core.settings import MAX_ACCOUNT_INDEX
from core.snapshot import now_ms

log = logging.getLogger(__name__)
api = Blueprint("api", __name__, url_prefix="/api")
health = Blueprint("health", __name__)
_INDEX = re.compile(r"\d{1,19}")
ACCOUNT_ENDPOINT = "api.account"  # also the rate limiter's scope for this route (app.rest.limits.Budget)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _ext(name: str) -> Any:
    return current_app.extensions[name]


def parse_index(raw: str) -> int:
    """The account index from the URL, or a 400 for anything that is not an int64 account index."""
    if not _INDEX.fullmatch(raw):
        abort(400, f"account index must be a non-negative integer (got {raw[:40]!r})")
    index = int(raw)
    if index > MAX_ACCOUNT_INDEX:
        abort(400, f"account index must be at most {MAX_ACCOUNT_INDEX}")
    return index


def _resource() -> tuple[Any, str] | None:
    """The body and ETag of the conditional resource this request names, read once per request."""
    if "lb_resource" not in g:
        g.lb_resource = None
        settings = _ext("lb_settings")
        store = _ext("lb_store")
        mirror = Mirror.serving(_ext("lb_hub"))  # None unless the hub is in sync: then read the store as before
        if request.endpoint == ACCOUNT_ENDPOINT:
            index = parse_index(request.view_args["index"])
            snapshot = mirror.account(index) if mirror is not None else None
            if snapshot is not None:  # a tracked account the mirror holds; misses take the store path (404/503)
                body = account_body(snapshot, settings.cache_ttl)
                g.lb_resource = (body, etag(body.get("seq", 0), body["stale"]))
                return g.lb_resource
            snapshot = store.account(index)
            if snapshot is None and not store.populated():
                # Not "untracked": the store is empty until the worker (re)writes it, e.g. after Redis restarts.
                abort(503, "the store holds no data yet; the worker has not written it")
            if snapshot is None or index not in store.tracked():
                abort(404, f"account {index} is not tracked")
            body = account_body(snapshot, settings.cache_ttl)
            g.lb_resource = (body, etag(body.get("seq", 0), body["stale"]))
        elif request.endpoint == "api.accounts":
            snapshots = mirror.accounts() if mirror is not None else store.accounts()
            bodies = [account_body(s, settings.cache_ttl) for s in snapshots]
            g.lb_resource = ({"accounts": bodies, "server_time": now_ms()}, list_etag(bodies))
    return g.lb_resource


def not_modified() -> bool:
    """Limiter request filter: an If-None-Match hit is answered with 304 and never counted."""
    matches = request.if_none_match
    if not matches or request.endpoint not in (ACCOUNT_ENDPOINT, "api.accounts"):
        return False
    if not auth.authorized(_ext("lb_settings"), request):
        return False
    try:
        resource = _resource()
    except Exception:  # noqa: BLE001 - errors (400/404/503) surface from the view itself, counted as usual
        g.pop("lb_resource", None)
        return False
    return resource is not None and matches.contains_weak(resource[1])


def _conditional(resource: tuple[Any, str]) -> Response:
    body, tag = resource
    hit = request.if_none_match and request.if_none_match.contains_weak(tag)
    response = Response(status=304) if hit else _json(body)
    response.set_etag(tag, weak=True)
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Poll-Interval"] = f"{_ext('lb_status').poll_interval():g}"
    return response


@api.before_request
def _require_token() -> Response | None:
    if request.endpoint != "api.openapi" and not auth.authorized(_ext("lb_settings"), request):
        return error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    return None


@api.get("/accounts/<index>")
def account(index: str) -> Response:
    return _conditional(_resource())


@api.get("/accounts")
def accounts() -> Response:
    return _conditional(_resource())


@api.get("/status")
def status() -> Response:
    hub = _ext("lb_hub")
    response = _json(_ext("lb_status").view(clients=len(hub.clients), fresh=True))
    response.headers["Cache-Control"] = "no-cache"
    return response


@api.get("/openapi.json")
def openapi() -> Response:
    from app.rest.openapi import document

    return _json(document())


@health.get("/health")
def alive() -> Response:
    """Liveness: always 200 while the process serves; says whether the store and the worker look healthy."""
    body: dict[str, Any] = {"ok": True, "server_time": now_ms()}
    try:
        # One uncached read (~0.2 ms): it is also the store reachability probe.
        worker = worker_view(_ext("lb_store").status(), body["server_time"])
        body.update(store_reachable=True, worker_up=worker["up"])
    except Exception as exc:  # noqa: BLE001 - liveness must not depend on the store
        log.info("health: store unreachable: %s", exc)
        body.update(store_reachable=False, worker_up=False)
    return _json(body)


def init_app(app: Flask) -> None:
    app.register_blueprint(api)
    app.register_blueprint(health)
