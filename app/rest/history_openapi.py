"""OpenAPI entries of the history routes (app/rest/history.py), merged into /api/openapi.json by app/rest/openapi."""
from __future__ import annotations

from typing import Any

_STR = {"type": "string"}
_STR_N = {"type": "string", "nullable": True}
_INT = {"type": "integer", "format": "int64"}
MAX_TS = 2**62  # the largest from/to accepted (ms); app/rest/history.py checks the same bound
_INT_N = {"type": "integer", "format": "int64", "nullable": True}


def _obj(required: tuple[str, ...], props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": props}


def _page(item: str, key: str) -> dict[str, Any]:
    return _obj(("account_index", key, "next_cursor"),
                {"account_index": _INT, key: {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
                 "next_cursor": {**_STR_N, "description": "pass as `cursor` for the next (older) page"}})


SCHEMAS: dict[str, Any] = {
    "HistoryFill": _obj(("trade_id", "ts", "market_id", "side", "role", "price", "size"),
                 {"trade_id": _INT, "ts": _INT, "market_id": _INT, "side": {"type": "string", "enum": ["buy", "sell"]},
                  "role": {"type": "string", "enum": ["maker", "taker"]}, "price": _STR, "size": _STR, "fee": _STR_N,
                  "realized_pnl": _STR_N, "order_index": _INT_N, "type": _STR,
                  "source": {"type": "string", "enum": ["ws", "rest", "backfill"]}}),
    "FillPage": _page("HistoryFill", "fills"),
    "PositionEvent": _obj(("id", "ts", "market_id", "kind", "size_before", "size_after"),
                          {"id": _INT, "ts": _INT, "market_id": _INT,
                           "kind": {"type": "string", "enum": ["open", "increase", "reduce", "close", "flip"]},
                           "size_before": _STR, "size_after": _STR, "avg_entry_price": _STR_N,
                           "realized_pnl": _STR_N}),
    "PositionEventPage": _page("PositionEvent", "events"),
    "OrderEvent": _obj(("id", "ts", "order_index", "market_id", "kind", "status"),
                       {"id": _INT, "ts": _INT, "order_index": _INT, "market_id": _INT,
                        "kind": {"type": "string", "enum": ["placed", "partly_filled", "filled", "cancelled"]},
                        "status": _STR, "side": _STR_N, "price": _STR_N, "initial_size": _STR_N,
                        "remaining": _STR_N}),
    "OrderEventPage": _page("OrderEvent", "events"),
    "FundingPayment": _obj(("ts", "market_id", "amount", "total_paid_out"),
                           {"ts": _INT, "market_id": _INT,
                            "amount": {**_STR, "description": "change of total_funding_paid_out since last seen"},
                            "total_paid_out": _STR}),
    "FundingPage": _page("FundingPayment", "payments"),
    "EquityPoint": _obj(("ts", "first", "min", "max", "last", "samples"),
                        {"ts": {**_INT, "description": "bucket start, ms"}, "first": _STR, "min": _STR, "max": _STR,
                         "last": _STR, "samples": {"type": "integer"}, "collateral": _STR_N, "upnl": _STR_N,
                         "margin_usage": _STR_N, "leverage": _STR_N}),
    "EquitySeries": {"type": "object", "required": ["from", "to", "bucket_ms", "points"],
                     "properties": {"account_index": _INT, "accounts": {"type": "array", "items": _INT},
                                    "from": _INT, "to": _INT, "bucket_ms": _INT,
                                    "points": {"type": "array", "items": {"$ref": "#/components/schemas/EquityPoint"}},
                                    "next_cursor": {"nullable": True}}},
}


def _param(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "integer", "format": "int64", "minimum": 0, "maximum": MAX_TS}}


def paths(errors: Any) -> dict[str, Any]:
    """`errors(*statuses)` is openapi.py's error-response builder."""
    index = {"name": "index", "in": "path", "required": True, "description": "Lighter account index (int64)",
             "schema": {"type": "integer", "format": "int64", "minimum": 0}}
    window = [_param("from", "start, ms since the epoch (inclusive)"), _param("to", "end, ms (exclusive); now")]
    paging = [*window, _param("limit", "rows per page, 1..1000 (100)", {"type": "integer", "minimum": 1,
                                                                          "maximum": 1000}),
              _param("cursor", "next_cursor of the previous page", {"type": "string"})]
    equity = [*window, _param("bucket_s", "bucket size in seconds (default: the range in 500 buckets; widened to "
                                          "give at most 5000 buckets)",
                                 {"type": "integer", "minimum": 1, "maximum": MAX_TS // 1000})]

    def get(summary: str, params: list[dict[str, Any]], schema: str, statuses: tuple[int, ...]) -> dict[str, Any]:
        ref = {"$ref": f"#/components/schemas/{schema}"}
        return {"get": {"summary": summary, "parameters": params,
                        "responses": {"200": {"description": summary,
                                              "content": {"application/json": {"schema": ref},
                                                          "text/csv": {"schema": {"type": "string"}}}},
                                      **errors(*statuses)}}}

    account_errors = (400, 401, 404, 429, 503)
    return {
        "/api/accounts/{index}/fills": get("Fills, newest first (Accept: text/csv for CSV)", [index, *paging],
                                           "FillPage", account_errors),
        "/api/accounts/{index}/position-events": get("Position events, newest first", [index, *paging],
                                                     "PositionEventPage", account_errors),
        "/api/accounts/{index}/order-events": get("Order lifecycle events, newest first", [index, *paging],
                                                  "OrderEventPage", account_errors),
        "/api/accounts/{index}/funding": get("Funding payments, newest first", [index, *paging], "FundingPage",
                                             account_errors),
        "/api/accounts/{index}/equity": get("Equity curve: first/min/max/last per bucket", [index, *equity],
                                            "EquitySeries", account_errors),
        "/api/portfolio/equity": get("Equity of all tracked accounts together, bucketed", equity, "EquitySeries",
                                     (400, 401, 429, 503)),
    }
