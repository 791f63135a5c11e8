"""REST: /health and /api/* — read through app/rest/reader.py (the mirror while in sync, else the store), with
ETags and poll hints (app/rest/conditional.py, shared with the pre-Flask shortcut)."""
from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, abort, g, request

from app import auth
from app.errors import error_response
from app.rest import portfolio
from app.rest.conditional import Answer, Resource, account_resource, answer, list_resource
from app.rest.reader import NotPopulated, NotTracked
from app.services import services
from app.status import worker_view
from core.accounts import MAX_ACCOUNT_INDEX
from core.snapshot import Snapshot, now_ms

log = logging.getLogger(__name__)
api = Blueprint("api", __name__, url_prefix="/api")
health = Blueprint("health", __name__)
_INDEX = re.compile(r"\d{1,19}")
ACCOUNT_ENDPOINT = "api.account"  # also the rate limiter's scope for this route (app.rest.limits.ClientBudget)
ACCOUNTS_ENDPOINT = "api.accounts"
PORTFOLIO_ENDPOINT = "api.portfolio"
KIND_ENDPOINT = "api.account_kind"    # /api/accounts/<index>/<kind>
KINDS_ENDPOINT = "api.kinds"          # /api/<kind>
# The conditional routes: ETag/304 from one builder; a 304 is not counted by the rate limit.
CONDITIONAL = frozenset({ACCOUNT_ENDPOINT, ACCOUNTS_ENDPOINT, PORTFOLIO_ENDPOINT, KIND_ENDPOINT, KINDS_ENDPOINT})


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def parse_index(raw: str) -> int:
    """The account index from the URL, or a 400 for anything that is not an int64 account index."""
    if not _INDEX.fullmatch(raw):
        abort(400, f"account index must be a non-negative integer (got {raw[:40]!r})")
    index = int(raw)
    if index > MAX_ACCOUNT_INDEX:
        abort(400, f"account index must be at most {MAX_ACCOUNT_INDEX}")
    return index


def _kind() -> str:
    kind = (request.view_args or {})["kind"]
    if kind not in portfolio.KINDS:
        abort(404, f"no such view {kind[:40]!r}: use one of {', '.join(portfolio.KINDS)}")
    return str(kind)


def _tracked_account() -> Snapshot:
    """The snapshot of the account the URL names, or the 400/404/503 saying why there is none."""
    index = parse_index((request.view_args or {})["index"])
    found = services().reader.account(index)
    if isinstance(found, NotPopulated):
        # Not "untracked": the store is empty until the worker (re)writes it, e.g. after Redis restarts.
        abort(503, "the store holds no data yet; the worker has not written it")
    if isinstance(found, NotTracked):
        abort(404, f"account {index} is not tracked")
    return found


def _resource() -> Resource:
    """The body and ETag of the conditional resource this request names, read once per request (the limiter's
    filter and the view both ask)."""
    if "lb_resource" not in g:
        svc = services()
        settings = svc.settings
        endpoint = request.endpoint
        if endpoint == ACCOUNT_ENDPOINT:
            g.lb_resource = account_resource(_tracked_account(), settings.cache_ttl)
        elif endpoint == KIND_ENDPOINT:
            kind = _kind()
            g.lb_resource = portfolio.kind_resource(_tracked_account(), kind, settings)
        elif endpoint == KINDS_ENDPOINT:
            kind = _kind()
            g.lb_resource = portfolio.kinds_resource(svc.reader.accounts(), kind, settings)
        elif endpoint == PORTFOLIO_ENDPOINT:
            g.lb_resource = portfolio.portfolio_resource(svc.reader.accounts(), settings)
        else:
            g.lb_resource = list_resource(svc.reader.accounts(), settings.cache_ttl)
    resource: Resource = g.lb_resource
    return resource


def not_modified() -> bool:
    """Limiter request filter: an If-None-Match hit is answered with 304 and never counted."""
    if not request.headers.get("If-None-Match") or request.endpoint not in CONDITIONAL:
        return False
    if not auth.authorized(services().settings, request):
        return False
    try:
        return _answer().status == 304
    except Exception:  # noqa: BLE001 - errors (400/404/503) surface from the view itself, counted as usual
        g.pop("lb_resource", None)
        return False


def _answer() -> Answer:
    return answer(_resource(), services().status.poll_interval(), request.headers.get("If-None-Match"))


def _conditional() -> Response:
    result = _answer()
    response = Response(result.data, status=result.status, mimetype="application/json")
    response.headers.extend(result.headers)
    return response


@api.before_request
def _require_token() -> Response | None:
    if request.endpoint != "api.openapi" and not auth.authorized(services().settings, request):
        return error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    return None


@api.get("/accounts/<index>")
def account(index: str) -> Response:
    return _conditional()


@api.get("/accounts")
def accounts() -> Response:
    return _conditional()


@api.get("/accounts/<index>/<kind>")
def account_kind(index: str, kind: str) -> Response:
    """One kind (positions, orders, trades) of one account, for pollers that want one thing."""
    return _conditional()


@api.get("/<any(positions, orders, trades):kind>")
def kinds(kind: str) -> Response:
    """One kind across every tracked account."""
    return _conditional()


@api.get("/portfolio", endpoint="portfolio")
def portfolio_view() -> Response:
    """Per account and in total: equity, PnL, margin, leverage, volumes, positions with liquidation distance."""
    return _conditional()


@api.get("/status")
def status() -> Response:
    svc = services()
    response = _json(svc.status.view(clients=len(svc.hub.clients), fresh=True))
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
        services().store.probe()  # read and write: a deleted CACHE_DIR is unreachable, not empty
        worker = worker_view(services().store.status(), body["server_time"])
        body.update(store_reachable=True, worker_up=worker["up"])
    except Exception as exc:  # noqa: BLE001 - liveness must not depend on the store
        log.info("health: store unreachable: %s", exc)
        body.update(store_reachable=False, worker_up=False)
    return _json(body)


def init_app(app: Flask) -> None:
    app.register_blueprint(api)
    app.register_blueprint(health)
