"""REST for history (docs/history.md): fills, equity curves (bucketed by the database), position and order events.

Same token rule and rate limit as the rest of /api. JSON by default; CSV when the client sends `Accept: text/csv`.
The web only reads: the worker writes and migrates. Database calls block this request's greenlet, never the hub
(core/history/db.py).
"""
from __future__ import annotations

import csv
import io
import logging
import math
import re
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, abort, request
from flask_limiter import Limiter

from app import auth
from app.errors import error_response
from app.rest.api import parse_index
from app.rest.history_openapi import MAX_TS
from app.services import services
from core.history.db import DB_ERRORS, PAGE_KEYS, HistoryDB
from core.history.schema import PORTFOLIO
from core.settings import Settings
from core.snapshot import now_ms

log = logging.getLogger(__name__)
history = Blueprint("history", __name__, url_prefix="/api")
_DB_KEY = "lighter_broadcaster_history_db"
_CURSOR = re.compile(r"(-?\d{1,19}):(\d{1,19})")

PAGE_DEFAULT = 100          # rows per page unless `limit` says otherwise
PAGE_MAX = 1000             # the most rows one page returns
POINTS_DEFAULT = 500        # equity: without `bucket_s`, buckets are sized so the range gives at most this many
POINTS_MAX = 5000           # equity: a `bucket_s` giving more buckets than this is widened to give this many
EQUITY_RANGE_DEFAULT_MS = 86_400_000  # equity: without `from`, the last 24 h

FILL_COLUMNS = ("trade_id", "ts", "market_id", "side", "role", "price", "size", "fee", "realized_pnl",
                "order_index", "type", "source")
POSITION_COLUMNS = ("id", "ts", "market_id", "kind", "size_before", "size_after", "avg_entry_price", "realized_pnl")
ORDER_COLUMNS = ("id", "ts", "order_index", "market_id", "kind", "status", "side", "price", "initial_size",
                 "remaining")
FUNDING_COLUMNS = ("ts", "market_id", "amount", "total_paid_out")
EQUITY_COLUMNS = ("ts", "first", "min", "max", "last", "samples", "collateral", "upnl", "margin_usage", "leverage")


class HistoryUnavailable(Exception):
    """History is disabled, not migrated yet, or the database does not answer."""


def _db() -> HistoryDB:
    from flask import current_app

    settings = services().settings.history
    if not settings.enabled:
        raise HistoryUnavailable("history is disabled (HISTORY_ENABLED=0)")
    db: HistoryDB | None = current_app.extensions.get(_DB_KEY)
    if db is None:
        db = HistoryDB(settings.database_url.reveal())
        current_app.extensions[_DB_KEY] = db
    return db


def _query(func: Any, *args: Any) -> Any:
    """Run a read; a missing schema or an unreachable database is a 503, never a traceback."""
    try:
        return func(*args)
    except DB_ERRORS as exc:
        log.warning("history read failed on %s: %s", request.path, type(exc).__name__)
        raise HistoryUnavailable("history database unavailable or not initialised by the worker yet") from None


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    raw = raw.strip()  # present but empty is not an integer either
    if not re.fullmatch(r"-?\d{1,19}", raw):
        abort(400, f"{name} must be an integer")
    value = int(raw)
    if not low <= value <= high:
        abort(400, f"{name} must be between {low} and {high}")
    return value


def _range(default_span_ms: int | None) -> tuple[int, int]:
    """`from` (inclusive) and `to` (exclusive), ms since the epoch."""
    end = _int_arg("to", now_ms() + 1, 0, MAX_TS)
    start = _int_arg("from", 0 if default_span_ms is None else max(0, end - default_span_ms), 0, MAX_TS)
    return start, max(start, end)  # from >= to is an empty window, not an error


def _cursor() -> tuple[int, int] | None:
    raw = request.args.get("cursor", "").strip()
    if not raw:
        return None
    match = _CURSOR.fullmatch(raw)
    if match is None:
        abort(400, "cursor must be the next_cursor of a previous page")
    return int(match.group(1)), int(match.group(2))


def _tracked(raw: str) -> int:
    index = parse_index(raw)
    if services().settings.account(index) is None:
        abort(404, f"account {index} is not tracked")
    return index


def _wants_csv() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _respond(rows: list[dict[str, Any]], columns: tuple[str, ...], key: str, extra: dict[str, Any],
             next_cursor: str | None) -> Response:
    if _wants_csv():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([row.get(c) for c in columns] for row in rows)
        response = Response(buffer.getvalue(), mimetype="text/csv")
        if next_cursor:
            response.headers["X-Next-Cursor"] = next_cursor
    else:
        body = {**extra, key: [{c: row.get(c) for c in columns} for row in rows], "next_cursor": next_cursor}
        response = Response(orjson.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Vary"] = "Accept"
    return response


@history.before_request
def _require_token() -> Response | None:
    if not auth.authorized(services().settings, request):
        return error_response(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
    return None


@history.errorhandler(HistoryUnavailable)
def _unavailable(exc: HistoryUnavailable) -> Response:
    return error_response(503, str(exc), {"Retry-After": "5"})


@history.get("/accounts/<index>/fills")
def fills(index: str) -> Response:
    return _page(index, "fills", FILL_COLUMNS, "fills")


@history.get("/accounts/<index>/position-events")
def position_events(index: str) -> Response:
    return _page(index, "position_events", POSITION_COLUMNS, "events")


@history.get("/accounts/<index>/order-events")
def order_events(index: str) -> Response:
    return _page(index, "order_events", ORDER_COLUMNS, "events")


@history.get("/accounts/<index>/funding")
def funding(index: str) -> Response:
    return _page(index, "funding_payments", FUNDING_COLUMNS, "payments")


def _page(index: str, table: str, columns: tuple[str, ...], key: str) -> Response:
    """One page of a table's rows (HistoryDB.page) and the cursor of the next: (ts, key column) of its last row."""
    account = _tracked(index)
    start, end = _range(None)
    limit = _int_arg("limit", PAGE_DEFAULT, 1, PAGE_MAX)
    rows = _query(_db().page, table, account, start, end, limit, _cursor())
    next_cursor = f"{rows[-1]['ts']}:{rows[-1][PAGE_KEYS[table]]}" if len(rows) == limit else None
    return _respond(rows, columns, key, {"account_index": account}, next_cursor)


def _equity(account: int, extra: dict[str, Any]) -> Response:
    start, end = _range(EQUITY_RANGE_DEFAULT_MS)
    span = end - start
    # Checked before anything else: an empty window must not accept a bucket_s that a full one would refuse.
    bucket_s = _int_arg("bucket_s", max(1, math.ceil(span / POINTS_DEFAULT / 1000)), 1, MAX_TS // 1000)
    if span == 0:
        return _respond([], EQUITY_COLUMNS, "points", {**extra, "from": start, "to": end, "bucket_ms": bucket_s * 1000},
                        None)
    # A bucket too small for the range is widened to give POINTS_MAX buckets; `bucket_ms` says what was used.
    bucket_ms = max(bucket_s, math.ceil(span / POINTS_MAX / 1000)) * 1000
    rows = _query(_db().equity_buckets, account, start, end, bucket_ms)
    for row in rows:  # min/max come from the double column: served as decimal text like first/last
        row["min"], row["max"] = repr(row["min"]), repr(row["max"])
    body = {**extra, "from": start, "to": end, "bucket_ms": bucket_ms}
    return _respond(rows, EQUITY_COLUMNS, "points", body, None)


@history.get("/accounts/<index>/equity")
def account_equity(index: str) -> Response:
    account = _tracked(index)
    return _equity(account, {"account_index": account})


@history.get("/portfolio/equity")
def portfolio_equity() -> Response:
    return _equity(PORTFOLIO, {"accounts": [a.account_index for a in services().settings.accounts]})


def init_app(app: Flask, settings: Settings, limiter: Limiter) -> None:
    limiter.limit(settings.rate_limit)(history)
    app.register_blueprint(history)
