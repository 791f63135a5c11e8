"""The `/_sim/` control API: truth for tests, counters, faults, market control (never rate limited)."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from . import views
from .http_api import json_response
from .markets import MARKETS_BY_ID

if TYPE_CHECKING:
    from .server import Sim


class BadRequest(Exception):
    """A control request with a bad body; answered 400 with the reason."""


def _sim(request: web.Request) -> Sim:
    return request.app["sim"]


async def _body(request: web.Request) -> dict:
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _account(sim: Sim, raw: str) -> Any:
    try:
        return sim.model.accounts[int(raw)]
    except (ValueError, KeyError) as exc:
        raise web.HTTPNotFound() from exc


async def accounts(request: web.Request) -> web.Response:
    return json_response({"accounts": [
        {"account_index": a.index, "api_key_index": a.api_key_index, "private_key": a.private_key,
         "public_key": a.public_key, "l1_address": a.l1_address}
        for a in _sim(request).model.accounts.values()]})


async def state(request: web.Request) -> web.Response:
    sim = _sim(request)
    acct = _account(sim, request.match_info["index"])
    return json_response({
        "account": views.detailed_account(acct, sim.model),
        "orders": views.orders_response(acct, None)["orders"],
        "user_stats": views.user_stats(acct, sim.model),
        "marks": {str(mid): MARKETS_BY_ID[mid].price(p) for mid, p in sim.model.marks.items()},
    })


async def counters(request: web.Request) -> web.Response:
    return json_response(_sim(request).counters_json())


async def counters_reset(request: web.Request) -> web.Response:
    _sim(request).counters.reset()
    return json_response({"ok": True})


async def ratelimit_reset(request: web.Request) -> web.Response:
    _sim(request).limiter.reset()
    return json_response({"ok": True})


async def faults_add(request: web.Request) -> web.Response:
    sim = _sim(request)
    body = await _body(request)
    try:
        fault = sim.faults.add(body.get("kind"), body.get("scope"), body.get("duration_s"),
                               body.get("params"), sim.clock())
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    if fault.kind in ("ws_drop", "ws_shutdown"):
        sim.hub.apply_fault(fault)
    return json_response({"id": fault.id, **fault.to_json(sim.clock())})


async def faults_list(request: web.Request) -> web.Response:
    sim = _sim(request)
    return json_response({"faults": [f.to_json(sim.clock()) for f in sim.faults.active(sim.clock())]})


async def faults_delete(request: web.Request) -> web.Response:
    if not _sim(request).faults.remove(request.match_info["id"]):
        raise web.HTTPNotFound()
    return json_response({"ok": True})


async def faults_clear(request: web.Request) -> web.Response:
    _sim(request).faults.clear()
    return json_response({"ok": True})


async def geo_block(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body.get("enabled"), bool):
        raise BadRequest("enabled must be a boolean")
    _sim(request).geo_block = body["enabled"]
    return json_response({"geo_block": body["enabled"]})


async def tier(request: web.Request) -> web.Response:
    body = await _body(request)
    try:
        _sim(request).limiter.set_tier(body.get("tier"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return json_response({"tier": body["tier"]})


async def market(request: web.Request) -> web.Response:
    body = await _body(request)
    if not isinstance(body.get("running"), bool):
        raise BadRequest("running must be a boolean")
    _sim(request).running = body["running"]
    return json_response({"running": body["running"]})


async def step(request: web.Request) -> web.Response:
    sim = _sim(request)
    sim.apply(sim.model.tick(sim.now_ms()))
    return json_response({"ok": True, "block_height": sim.model.block_height})


async def trade(request: web.Request) -> web.Response:
    sim = _sim(request)
    acct = _account(sim, request.match_info["index"])
    body = await _body(request)
    try:
        market_id, is_ask = int(body["market_id"]), body.get("is_ask", False)
        if not isinstance(is_ask, bool):
            raise BadRequest("is_ask must be a boolean")
        size = Decimal(str(body["size"]))
        if market_id not in MARKETS_BY_ID:
            raise BadRequest(f"unknown market_id {market_id}")
        sim.apply(sim.model.trade(acct.index, market_id, size, is_ask, sim.now_ms()))
    except (KeyError, ValueError, InvalidOperation) as exc:
        raise BadRequest(f"need market_id (int), size (decimal string > 0), is_ask (bool): {exc}") from exc
    return json_response({"account": views.detailed_account(acct, sim.model)})


@web.middleware
async def bad_request_mw(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except BadRequest as exc:
        return json_response({"error": str(exc)}, 400)


def add_routes(app: web.Application) -> None:
    app.middlewares.append(bad_request_mw)
    r = app.router
    r.add_get("/_sim/accounts", accounts)
    r.add_get("/_sim/state/{index}", state)
    r.add_get("/_sim/counters", counters)
    r.add_post("/_sim/counters/reset", counters_reset)
    r.add_post("/_sim/ratelimit/reset", ratelimit_reset)
    r.add_post("/_sim/faults", faults_add)
    r.add_get("/_sim/faults", faults_list)
    r.add_delete("/_sim/faults", faults_clear)
    r.add_delete("/_sim/faults/{id}", faults_delete)
    r.add_post("/_sim/geo-block", geo_block)
    r.add_post("/_sim/tier", tier)
    r.add_post("/_sim/market", market)
    r.add_post("/_sim/step", step)
    r.add_post("/_sim/accounts/{index}/trade", trade)
