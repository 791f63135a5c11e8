"""The hand-written OpenAPI 3.0 document for the REST API (`/api/openapi.json`); tests check conformance."""
from __future__ import annotations

from typing import Any

from app.rest import alerts as alerts_api
from app.rest import history_openapi

NULLABLE_INT = {"type": "integer", "nullable": True}
# Money, sizes and ratios: exact decimal strings as Lighter sends them; null when unknown (never 0).
DECIMAL = {"type": "string", "nullable": True, "pattern": r"^-?\d+(\.\d+)?$"}
NULLABLE_STRING = {"type": "string", "nullable": True}
_MONEY = ("equity", "collateral", "available_balance", "unrealized_pnl", "realized_pnl", "margin_used", "notional",
          "volume_24h", "volume_7d", "volume_30d", "volume_total", "margin_usage_pct", "leverage",
          "worst_liquidation_distance_pct")
_COUNTS = ("position_count", "active_order_count", "trade_count")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def _errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Bad index", 401: "Missing or wrong bearer token (only when API_TOKEN is set)",
            404: "Account not tracked", 429: "Rate limited; see Retry-After", 503: "Store unreachable"}
    headers = {429: {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}}
    return {str(s): _json(_ref("Error"), text[s], headers.get(s)) for s in statuses}


POLL_HEADERS = {
    "ETag": {"schema": {"type": "string"},
             "description": "weak; the content version (kept across confirmations) and staleness"},
    "X-Poll-Interval": {"schema": {"type": "string"}, "description": "useful poll interval, seconds"},
    "X-Data-As-Of": {"schema": {"type": "string"},
                     "description": "ms; upstream last vouched for the data (a list: the oldest account)"},
    "X-Data-Age-Ms": {"schema": {"type": "string"}, "description": "ms; the data's age when answered"},
    "Cache-Control": {"schema": {"type": "string"}},
}

# /api/status's `alerts` (app/alerts_status.py): counts only, never a destination's URL. With alerts off, only
# rules, destinations and outbox (null); with the outbox unreadable, every outbox figure is null.
_LAST_DELIVERED = {"type": "object", "nullable": True, "additionalProperties": False,
                   "required": ["destination", "rule", "delivered_ms", "attempts", "last_code"],
                   "properties": {"destination": {"type": "string"}, "rule": {"type": "string"},
                                  "delivered_ms": {"type": "integer"}, "attempts": {"type": "integer"},
                                  "last_code": NULLABLE_INT}}
_LAST_FAILURE = {"type": "object", "nullable": True, "additionalProperties": False,
                 "description": "the newest row attempted and not delivered (retrying or failed)",
                 "required": ["destination", "rule", "status", "attempts", "last_code", "last_error"],
                 "properties": {"destination": {"type": "string"}, "rule": {"type": "string"},
                                "status": {"type": "string", "enum": ["pending", "failed"]},
                                "attempts": {"type": "integer"}, "last_code": NULLABLE_INT,
                                "last_error": NULLABLE_STRING}}
_STATUS_ALERTS = {"type": "object", "additionalProperties": False, "required": ["rules", "destinations", "outbox"],
                  "properties": {"rules": {"type": "integer", "minimum": 0},
                                 "destinations": {"type": "integer", "minimum": 0},
                                 "outbox": {"type": "string", "nullable": True, "enum": ["ok", "unavailable", None],
                                            "description": "null: alerts are off"},
                                 **{k: {**NULLABLE_INT, "minimum": 0} for k in ("backlog", "retrying", "failed")},
                                 "last_delivered": _LAST_DELIVERED, "last_failure": _LAST_FAILURE}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status", "message"],
              "properties": {"error": {"type": "string"}, "status": {"type": "integer"},
                             "message": {"type": "string"}}},
    "Section": {"type": "object", "required": ["source", "as_of", "data", "error", "age_ms", "stale"],
                "properties": {"source": {"type": "string", "nullable": True, "enum": ["ws", "rest", None]},
                               "as_of": NULLABLE_INT, "data": {"nullable": True}, "age_ms": NULLABLE_INT,
                               "error": {"type": "string", "nullable": True}, "stale": {"type": "boolean"}}},
    "Account": {"type": "object",
                "required": ["account_index", "seq", "prev_seq", "as_of", "age_ms", "stale", "public_only",
                             "sections"],
                "properties": {"schema": {"type": "integer"}, "account_index": {"type": "integer", "minimum": 0},
                               "seq": {"type": "integer", "minimum": 0}, "prev_seq": NULLABLE_INT,
                               "written_at": NULLABLE_INT, "as_of": NULLABLE_INT, "age_ms": NULLABLE_INT,
                               "stale": {"type": "boolean"}, "public_only": {"type": "boolean"},
                               "sections": {"type": "object",
                                            "additionalProperties": _ref("Section"),
                                            "properties": {n: _ref("Section") for n in
                                                           ("summary", "positions", "orders", "stats", "trades",
                                                            "volume")}},
                               "name": NULLABLE_STRING, "group": NULLABLE_INT}},
    "AccountList": {"type": "object", "required": ["accounts", "server_time"],
                    "properties": {"accounts": {"type": "array", "items": _ref("Account")},
                                   "server_time": {"type": "integer"}}},
    "Worker": {"type": "object", "required": ["up", "heartbeat_at", "heartbeat_age_ms"],
               "properties": {"up": {"type": "boolean"}, "pid": NULLABLE_INT, "started_at": NULLABLE_INT,
                              "heartbeat_at": NULLABLE_INT, "heartbeat_age_ms": NULLABLE_INT,
                              "role": {"type": "string", "nullable": True}, "epoch": NULLABLE_INT}},
    "Status": {"type": "object",
               "required": ["server_time", "worker", "store", "mode", "intervals", "egresses", "accounts", "errors",
                            "clients"],
               "properties": {"server_time": {"type": "integer"}, "worker": _ref("Worker"),
                              "standby": {"type": "object", "nullable": True},
                              "store": {"type": "object", "properties": {"kind": {"type": "string"},
                                                                         "reachable": {"type": "boolean"}}},
                              "upstream": {"type": "object", "nullable": True},
                              "mode": {"type": "string", "nullable": True},
                              "intervals": {"type": "object", "nullable": True},
                              "egresses": {"type": "array", "items": {"type": "object"}},
                              "accounts": {"type": "object", "additionalProperties": {"type": "object"}},
                              "errors": {"type": "array", "items": {"type": "object"}},
                              "clients": {"type": "object",
                                          "properties": {"websocket": {"type": "integer", "minimum": 0}}},
                              "cache_ttl_s": {"type": "number"}, "alerts": _STATUS_ALERTS}},
    "PortfolioPosition": {
        "type": "object",
        "required": ["market_id", "symbol", "side", "size", "notional", "mark_price", "entry_price",
                     "liquidation_price", "liquidation_distance_pct", "unrealized_pnl", "realized_pnl", "margin_used"],
        "properties": {"market_id": {"type": "integer"}, "symbol": NULLABLE_STRING,
                       "side": {"type": "string", "enum": ["long", "short"]},
                       **{k: DECIMAL for k in ("size", "notional", "mark_price", "entry_price", "liquidation_price",
                                                "liquidation_distance_pct", "unrealized_pnl", "realized_pnl",
                                                "margin_used")},
                       "size_decimals": NULLABLE_INT, "price_decimals": NULLABLE_INT}},
    "PortfolioAccount": {
        "type": "object",
        "required": ["account_index", "name", "group", "stale", "age_ms", "positions", *_MONEY, *_COUNTS],
        "properties": {"account_index": {"type": "integer", "minimum": 0}, "name": NULLABLE_STRING,
                       "group": NULLABLE_INT, "stale": {"type": "boolean"}, "age_ms": NULLABLE_INT,
                       "as_of": NULLABLE_INT, "seq": NULLABLE_INT, **{k: DECIMAL for k in _MONEY},
                       **{k: NULLABLE_INT for k in _COUNTS},
                       "positions": {"type": "array", "items": _ref("PortfolioPosition")}}},
    "PortfolioTotal": {
        "type": "object",
        "required": ["accounts", "stale", "stale_accounts", "age_ms", *_MONEY, *_COUNTS],
        "properties": {"accounts": {"type": "integer", "minimum": 0}, "stale": {"type": "boolean"},
                       "stale_accounts": {"type": "array", "items": {"type": "integer"}}, "age_ms": NULLABLE_INT,
                       **{k: DECIMAL for k in _MONEY}, **{k: NULLABLE_INT for k in _COUNTS}}},
    "Fill": {"type": "object",
             "required": ["account_index", "name", "market_id", "side", "size", "price", "timestamp", "trade_id"],
             "properties": {"account_index": {"type": "integer"}, "name": NULLABLE_STRING,
                            "market_id": NULLABLE_INT,
                            "side": {"type": "string", "nullable": True, "enum": ["buy", "sell", None]},
                            "size": DECIMAL, "price": DECIMAL, "usd_amount": DECIMAL, "timestamp": NULLABLE_INT,
                            "trade_id": NULLABLE_STRING}},
    "Portfolio": {"type": "object", "required": ["server_time", "total", "accounts", "recent_fills"],
                  "properties": {"server_time": {"type": "integer"}, "total": _ref("PortfolioTotal"),
                                 "accounts": {"type": "array", "items": _ref("PortfolioAccount")},
                                 "recent_fills": {"type": "array", "items": _ref("Fill"), "maxItems": 20}}},
    "KindView": {"type": "object",
                 "required": ["account_index", "name", "group", "kind", "seq", "source", "as_of", "data", "error",
                              "age_ms", "stale"],
                 "properties": {"account_index": {"type": "integer"}, "name": NULLABLE_STRING,
                                "group": NULLABLE_INT, "seq": NULLABLE_INT, "public_only": {"type": "boolean"},
                                "kind": {"type": "string", "enum": ["positions", "orders", "trades"]},
                                "source": {"type": "string", "nullable": True, "enum": ["ws", "rest", None]},
                                "as_of": NULLABLE_INT, "age_ms": NULLABLE_INT, "stale": {"type": "boolean"},
                                "error": NULLABLE_STRING,
                                "data": {"type": "array", "nullable": True, "items": {"type": "object"}}}},
    "KindList": {"type": "object", "required": ["kind", "server_time", "accounts"],
                 "properties": {"kind": {"type": "string", "enum": ["positions", "orders", "trades"]},
                                "server_time": {"type": "integer"},
                                "accounts": {"type": "array", "items": _ref("KindView")}}},
    "LighterError": {"type": "object", "required": ["code", "message"],
                     "properties": {"code": {"type": "integer"}, "message": {"type": "string"}}},
    "LighterDetailedAccounts": {"type": "object", "required": ["code", "total", "accounts"],
                                "description": "Lighter's DetailedAccounts (passes the SDK's strict validation)",
                                "properties": {"code": {"type": "integer"}, "total": {"type": "integer"},
                                               "next_cursor": {"type": "string"},
                                               "accounts": {"type": "array", "items": {"type": "object"}}}},
    "LighterOrders": {"type": "object", "required": ["code", "orders"],
                      "description": "Lighter's Orders (passes the SDK's strict validation)",
                      "properties": {"code": {"type": "integer"},
                                     "orders": {"type": "array", "items": {"type": "object"}}}},
    "Ready": {"type": "object", "required": ["ready", "store_reachable", "store_populated", "worker_up"],
              "properties": {"ready": {"type": "boolean"}, "store_reachable": {"type": "boolean"},
                             "store_populated": {"type": "boolean"}, "worker_up": {"type": "boolean"},
                             "reason": {"type": "string"}}},
    "Health": {"type": "object", "required": ["ok", "server_time", "store_reachable", "worker_up"],
               "properties": {"ok": {"type": "boolean"}, "server_time": {"type": "integer"},
                              "store_reachable": {"type": "boolean"}, "worker_up": {"type": "boolean"}}},
}


def _lighter_errors(*statuses: int) -> dict[str, Any]:
    text = {400: "Lighter error body (21100 account not tracked, 20001 bad parameter or missing token)",
            401: "Lighter 20013: wrong token (only when API_TOKEN is set)", 429: "Lighter 23000; see Retry-After",
            503: "Lighter 29500: orders not fetched yet, or store unreachable"}
    return {str(s): _json(_ref("LighterError"), text[s]) for s in statuses}


def lighter_paths() -> dict[str, Any]:
    """The Lighter-compatible routes (docs/lighter-compat.md): Lighter's shapes, for bots on the official SDK."""
    auth = [{"name": "auth", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "our API_TOKEN, where the SDK puts Lighter's auth token"},
            {"name": "Authorization", "in": "header", "required": False, "schema": {"type": "string"}}]
    account = {"summary": "Lighter's GET /api/v1/account, for tracked accounts",
               "parameters": [{"name": "by", "in": "query", "required": True,
                               "schema": {"type": "string", "enum": ["index", "l1_address"]}},
                              {"name": "value", "in": "query", "required": True, "schema": {"type": "string"}},
                              {"name": "active_only", "in": "query", "required": False,
                               "schema": {"type": "boolean"}}, *auth],
               "responses": {"200": _json(_ref("LighterDetailedAccounts"), "DetailedAccounts"),
                             **_lighter_errors(400, 401, 429, 503)}}
    orders = {"summary": "Lighter's GET /api/v1/accountActiveOrders, for tracked accounts with an API key",
              "parameters": [{"name": "account_index", "in": "query", "required": True,
                              "schema": {"type": "integer", "format": "int64", "minimum": 0}},
                             {"name": "market_id", "in": "query", "required": False,
                              "schema": {"type": "integer", "minimum": 0}},
                             {"name": "market_type", "in": "query", "required": False,
                              "schema": {"type": "string"}}, *auth],
              "responses": {"200": _json(_ref("LighterOrders"), "Orders"), **_lighter_errors(400, 401, 429, 503)}}
    return {"/api/v1/account": {"get": account}, "/api/v1/accountActiveOrders": {"get": orders}}


def _schemas(*parts: dict[str, Any]) -> dict[str, Any]:
    """Component schemas from several modules; a name defined twice would silently replace the first."""
    merged: dict[str, Any] = {}
    for part in parts:
        clash = merged.keys() & part.keys()
        if clash:
            raise ValueError(f"OpenAPI schema names defined twice: {sorted(clash)}")
        merged.update(part)
    return merged


def document() -> dict[str, Any]:
    index = {"name": "index", "in": "path", "required": True, "description": "Lighter account index (int64)",
             "schema": {"type": "integer", "format": "int64", "minimum": 0}}
    kind = {"name": "kind", "in": "path", "required": True, "description": "positions, orders or trades",
            "schema": {"type": "string", "enum": ["positions", "orders", "trades"]}}
    if_none_match = {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}}
    not_modified = {"description": "Unchanged since the ETag you sent (not counted by the rate limit)",
                    "headers": POLL_HEADERS}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Lighter Broadcaster", "version": "1",
                 "description": "Read-only snapshots of tracked Lighter accounts. See docs/api.md."},
        "components": {"schemas": _schemas(SCHEMAS, history_openapi.SCHEMAS, alerts_api.SCHEMAS),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "Required only when API_TOKEN is set"}}},
        "security": [{}, {"bearer": []}],
        "paths": {
            "/health": {"get": {"summary": "Liveness (never rate limited, never needs a token)", "security": [],
                                "responses": {"200": _json(_ref("Health"), "Alive")}}},
            "/ready": {"get": {"summary": "Readiness: the store is reachable and populated (never rate limited, "
                                          "never needs a token)", "security": [],
                               "responses": {"200": _json(_ref("Ready"), "Ready"),
                                             "503": _json(_ref("Ready"), "Not ready; `reason` says why")}}},
            "/api/status": {"get": {"summary": "Worker, upstream and per-account freshness",
                                    "responses": {"200": _json(_ref("Status"), "Status"),
                                                  **_errors(401, 429, 503)}}},
            "/api/accounts": {"get": {"summary": "Every tracked account", "parameters": [if_none_match],
                                      "responses": {"200": _json(_ref("AccountList"), "Accounts", POLL_HEADERS),
                                                    "304": not_modified, **_errors(401, 429, 503)}}},
            "/api/accounts/{index}": {"get": {"summary": "One tracked account", "parameters": [index, if_none_match],
                                              "responses": {"200": _json(_ref("Account"), "Account", POLL_HEADERS),
                                                            "304": not_modified,
                                                            **_errors(400, 401, 404, 429, 503)}}},
            "/api/portfolio": {"get": {
                "summary": "Per account and in total: equity, collateral, available balance, PnL, margin usage, "
                           "leverage, volumes, positions with liquidation distance, and the last 20 fills "
                           "(docs/api.md, Portfolio)",
                "parameters": [if_none_match],
                "responses": {"200": _json(_ref("Portfolio"), "Portfolio", POLL_HEADERS), "304": not_modified,
                              **_errors(401, 429, 503)}}},
            "/api/accounts/{index}/{kind}": {"get": {
                "summary": "One kind of one tracked account (its section, with freshness)",
                "parameters": [index, kind, if_none_match],
                "responses": {"200": _json(_ref("KindView"), "Section", POLL_HEADERS), "304": not_modified,
                              **_errors(400, 401, 404, 429, 503)}}},
            "/api/{kind}": {"get": {
                "summary": "One kind across every tracked account, in configuration order",
                "parameters": [kind, if_none_match],
                "responses": {"200": _json(_ref("KindList"), "Sections", POLL_HEADERS), "304": not_modified,
                              **_errors(401, 404, 429, 503)}}},
            **lighter_paths(),
            **history_openapi.paths(_errors),
            **alerts_api.openapi_paths(_errors),
        },
    }
