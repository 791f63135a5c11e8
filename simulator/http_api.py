"""Lighter's REST surface plus the gate every REST request passes: egress, counters, faults, rate limits."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from . import errors, shapes, trades, views
from .auth import check_token, request_token
from .ratelimit import weight_of

if TYPE_CHECKING:
    from .server import Sim

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_L1 = re.compile(r"0x[0-9a-fA-F]{40}")


def json_response(body: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    """JSON via orjson; the body object is kept on the response so faults can rewrite it."""
    resp = web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                        headers=headers)
    resp["json"] = body
    return resp


def egress_of(request: web.Request, trust_forwarded: bool) -> str:
    """The TCP peer IP (127.0.0.N are distinct egresses), or XFF's last hop from a trusted loopback proxy."""
    peer = request.remote or "unknown"
    if trust_forwarded and "X-Forwarded-For" in request.headers:
        try:
            loopback = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return request.headers["X-Forwarded-For"].split(",")[-1].strip() or peer
    return peer


@web.middleware
async def errors_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is a Lighter-style JSON body; unexpected ones are logged with their traceback."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return json_response(errors.NOT_FOUND, 404)
    except web.HTTPException as exc:
        return json_response({"code": 29000 + exc.status, "message": exc.reason.lower()}, exc.status)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error on %s", request.path)
        return json_response(errors.INTERNAL, 500)


@web.middleware
async def gate_mw(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count, fault and rate-limit Lighter's paths; /_sim/* and /stream pass straight through."""
    path = request.path
    if path.startswith("/_sim/") or path == "/stream":
        return await handler(request)
    sim: Sim = request.app["sim"]
    egress = egress_of(request, sim.cfg.trust_forwarded)
    sim.counters.requests[egress][path] += 1
    faults = sim.faults.rest(path, sim.clock())
    kinds = {f.kind: f for f in faults}
    if "latency" in kinds:
        await asyncio.sleep(float(kinds["latency"].params.get("ms", 1000)) / 1000)
    if "hang" in kinds:
        fault = kinds["hang"]
        try:  # hold the request until the fault is cleared or expires
            await asyncio.wait_for(fault.ended.wait(), fault.remaining(sim.clock()))
        except TimeoutError:
            pass
    if "rate_limit_storm" in kinds:
        sim.counters.rate_limited[egress] += 1
        retry = str(int(kinds["rate_limit_storm"].params.get("retry_after_s", 5)))
        return json_response(errors.TOO_MANY_REQUESTS, 429, {"Retry-After": retry})
    if "http_5xx" in kinds:
        return json_response(errors.INTERNAL, int(kinds["http_5xx"].params.get("status", 503)))
    # Lighter's published limits cover /api/v1/; the root health check is not charged (docs/simulator.md).
    if path.startswith("/api/"):
        retry_after = sim.limiter.acquire(egress, weight_of(path), sim.clock())
        if retry_after is not None:
            sim.counters.rate_limited[egress] += 1
            return json_response(errors.TOO_MANY_REQUESTS, 429, {"Retry-After": str(retry_after)})
    resp = await handler(request)
    return _rewrite(resp, kinds, sim.cfg.lenient)


def _rewrite(resp: web.StreamResponse, kinds: dict, lenient: bool) -> web.StreamResponse:
    """Apply --lenient, schema_drift and malformed_json to successful JSON bodies."""
    body = resp.get("json") if isinstance(resp, web.Response) else None
    if body is None or resp.status != 200:
        return resp
    drift = kinds.get("schema_drift")
    if lenient or (drift and drift.params.get("lenient")):
        body = shapes.lenient(body)
    if drift:
        body = shapes.drift(body)
    data = orjson.dumps(body)
    if "malformed_json" in kinds:
        data = data[: max(1, len(data) // 2)]  # a truncated body with a 200, as a cut-off proxy would send
    resp.body = data
    return resp


def middlewares() -> list:
    return [errors_mw, gate_mw]


def _int_param(request: web.Request, name: str, required: bool) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise ValueError(name)
        return None
    return int(raw)  # ValueError for garbage, reported as 20001


async def status(request: web.Request) -> web.Response:
    return json_response(views.status_response(int(request.app["sim"].clock())))


async def account(request: web.Request) -> web.Response:
    sim: Sim = request.app["sim"]
    by, value = request.query.get("by"), request.query.get("value", "")
    if by == "index":
        if not value.isdigit():
            return json_response(errors.INVALID_PARAM, 400)
        found = [sim.model.accounts[int(value)]] if int(value) in sim.model.accounts else []
    elif by == "l1_address":
        if not _L1.fullmatch(value):
            return json_response(errors.INVALID_L1_ADDRESS, 400)
        found = sim.model.account_by_l1(value)
    else:
        return json_response(errors.INVALID_PARAM, 400)
    if not found:
        return json_response(errors.ACCOUNT_NOT_FOUND, 400)
    return json_response(views.accounts_response(found, sim.model))


async def account_active_orders(request: web.Request) -> web.Response:
    sim: Sim = request.app["sim"]
    try:
        index = _int_param(request, "account_index", True)
        market_id = _int_param(request, "market_id", False)
    except ValueError:
        return json_response(errors.INVALID_PARAM, 400)
    acct = sim.model.accounts.get(index)
    token = request_token(dict(request.headers), dict(request.query))
    err = check_token(token, index, acct.api_key_index if acct else None, sim.clock())
    if err:
        return json_response(err, 400 if err is errors.AUTH_EMPTY else 401)
    if acct is None:
        return json_response(errors.ACCOUNT_NOT_FOUND, 400)
    return json_response(views.orders_response(acct, market_id))


async def order_books(request: web.Request) -> web.Response:
    sim: Sim = request.app["sim"]
    try:
        market_id = _int_param(request, "market_id", False)
    except ValueError:
        return json_response(errors.INVALID_PARAM, 400)
    return json_response(views.order_books_response(sim.model, market_id))


async def account_trades(request: web.Request) -> web.Response:
    """`GET /api/v1/trades` for one account (simulator/trades.py keeps the fills)."""
    sim: Sim = request.app["sim"]
    query = request.query
    try:
        limit = int(query.get("limit", ""))
        index = int(query.get("account_index", ""))
        below = int(query["cursor"]) if query.get("cursor") else None
    except ValueError:
        return json_response(errors.INVALID_PARAM, 400)
    if not 1 <= limit <= trades.MAX_LIMIT or query.get("sort_by") not in trades.SORT_BY \
            or query.get("sort_dir", "desc") not in ("asc", "desc"):
        return json_response(errors.INVALID_PARAM, 400)
    acct = sim.model.accounts.get(index)
    err = check_token(request_token(dict(request.headers), dict(query)), index,
                      acct.api_key_index if acct else None, sim.clock())
    if err:
        return json_response(err, 400 if err is errors.AUTH_EMPTY else 401)
    if acct is None:
        return json_response(errors.ACCOUNT_NOT_FOUND, 400)
    page, cursor = sim.trade_log.page(index, limit, below, query.get("sort_dir") == "asc")
    return json_response({"code": 200, "next_cursor": cursor, "trades": [trades.trade_row(f) for f in page]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", status)
    app.router.add_get("/api/v1/account", account)
    app.router.add_get("/api/v1/accountActiveOrders", account_active_orders)
    app.router.add_get("/api/v1/orderBooks", order_books)
    app.router.add_get("/api/v1/trades", account_trades)
