"""Lighter's REST routes served from the store: `/api/v1/account`, `/api/v1/accountActiveOrders`, and `GET /`.

Bodies come from the pure builders in `shapes`; this module only reads the data, checks our token and picks the
status. The data is what `/api/accounts` serves at the same moment, read through the same reader
(app/rest/reader.py): the mirror while the store watcher is in sync, else the store. Errors use Lighter's
`{"code", "message"}` body so the SDK raises the exception it would raise on Lighter.
"""
from __future__ import annotations

import time
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import TooManyRequests

from app.compat import auth, errors, shapes
from app.compat.errors import LighterError, LighterRefusal
from app.rest.reader import NotPopulated, NotTracked
from app.services import of, services
from core.snapshot import Snapshot, with_freshness

bp = Blueprint("lighter_compat", __name__, url_prefix="/api/v1")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = Response(orjson.dumps(body), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    response.headers.update(headers or {})
    return response


def _error(error: LighterError) -> Response:
    body, status = shapes.error_body(error)
    return _json(body, status)


def _freshness_headers(snapshots: list[Snapshot]) -> dict[str, str]:
    """Our freshness in headers, not the body: the bodies stay exactly Lighter's shape."""
    ttl = services().settings.cache_ttl
    views = [with_freshness(s, ttl) for s in snapshots]
    ages = [v["age_ms"] for v in views if v["age_ms"] is not None]
    return {"X-Broadcaster-Seq": ",".join(str(v.get("seq", 0)) for v in views),
            "X-Broadcaster-Age-Ms": str(max(ages)) if ages else "",
            "X-Broadcaster-Stale": "true" if any(v["stale"] for v in views) else "false"}


@bp.before_request
def _require_token() -> Response | None:
    """Our API_TOKEN (when set) guards every Lighter route, like the rest of /api: account data is ours to gate."""
    token = services().settings.api_token
    presented = auth.candidates(request.headers.get("Authorization"), request.args.get("auth"))
    error = auth.check(token.reveal() if token else None, presented)
    return _error(error) if error else None


@bp.errorhandler(TooManyRequests)
def _rate_limited(exc: TooManyRequests) -> Response:
    """Lighter's 429 body (code 23000); the limiter's Retry-After and X-RateLimit-* headers are kept."""
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    body, status = shapes.error_body(errors.TOO_MANY_REQUESTS)
    return _json(body, status, headers)


def _account(index: int) -> Snapshot | None:
    """A tracked account's snapshot, as /api/accounts/<index> serves it now (so the two never disagree). Lighter
    has no "no data yet": an empty store is "not found" too."""
    found = services().reader.account(index)
    return None if isinstance(found, NotTracked | NotPopulated) else found


@bp.get("/account")
def account() -> Response:
    """DetailedAccounts for one tracked account (`by=index`) or every tracked account of an owner (`by=l1_address`)."""
    try:
        by, value = shapes.parse_account_query(request.args.get("by"), request.args.get("value"))
    except LighterRefusal as exc:
        return _error(exc.error)
    if isinstance(value, int):  # by == "index"
        snapshot = _account(value)
        snapshots = [snapshot] if snapshot is not None else []
    else:
        snapshots = [s for s in services().reader.accounts() if shapes.matches_l1(s, value)]
    if not snapshots:
        return _error(errors.ACCOUNT_NOT_FOUND)
    active_only = (request.args.get("active_only") or "").lower() == "true"
    return _json(shapes.detailed_accounts(snapshots, active_only), headers=_freshness_headers(snapshots))


@bp.get("/accountActiveOrders")
def account_active_orders() -> Response:
    """Orders for a tracked account, optionally one market (`market_id`) or market kind (`market_type`)."""
    index = shapes.parse_int(request.args.get("account_index"))
    raw_market = request.args.get("market_id")
    market = shapes.parse_int(raw_market) if raw_market not in (None, "") else None
    if index is None or index < 0 or (raw_market not in (None, "") and market is None):
        return _error(errors.INVALID_PARAM)
    snapshot = _account(index)
    if snapshot is None:
        return _error(errors.ACCOUNT_NOT_FOUND)
    body, status = shapes.orders_body(snapshot, market, request.args.get("market_type"))
    return _json(body, status, _freshness_headers([snapshot]))


def _status_for_json_clients() -> Response | None:
    """`GET /` is the dashboard for browsers and Lighter's Status for API clients (the SDK asks for JSON).

    Runs before routing to the dashboard's view so that view stays untouched; like the dashboard page and /health
    it is not rate limited, and it reads nothing from the store.
    """
    if request.path != "/" or request.method not in ("GET", "HEAD"):
        return None
    if request.accept_mimetypes.best_match(["text/html", "application/json"]) != "application/json":
        return None
    return _json(shapes.status_body(int(time.time())))


def init_app(app: Flask) -> None:
    """Register the routes and put them under the web's per-client rate limit, as every /api route is."""
    limiters = app.extensions.get("limiter") or set()
    for limiter in limiters:
        limiter.limit(of(app).settings.rate_limit)(bp)
    app.register_blueprint(bp)
    app.before_request(_status_for_json_clients)
