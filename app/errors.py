"""Errors: JSON for API, WebSocket-handshake and metrics clients; a small HTML page for people on the dashboard."""
from __future__ import annotations

import logging
from html import escape

import orjson
from flask import Flask, Response, request
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from core.store import StoreError

log = logging.getLogger(__name__)
JSON_PREFIXES = ("/api", "/ws", "/health", "/ready", "/metrics")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The one JSON error shape: {"error": <reason phrase>, "status": int, "message": str}."""
    body = {"error": HTTP_STATUS_CODES.get(status, "Error"), "status": status, "message": message}
    response = Response(orjson.dumps(body), status=status, mimetype="application/json")
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def _html_error(status: int, message: str) -> Response:
    title = f"{status} {HTTP_STATUS_CODES.get(status, 'Error')}"
    page = (f"<!doctype html><meta charset=utf-8><title>{escape(title)}</title>"
            f"<h1>{escape(title)}</h1><p>{escape(message)}</p><p><a href=\"/\">Dashboard</a></p>")
    return Response(page, status=status, mimetype="text/html")


def _wants_json() -> bool:
    return request.path.startswith(JSON_PREFIXES) or request.accept_mimetypes.best == "application/json"


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or HTTP_STATUS_CODES.get(status, "Error")
        if status >= 500:
            # Unhandled errors arrive here as InternalServerError: never show their internals.
            original = getattr(exc, "original_exception", None)
            if original is not None:
                log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
            message = "internal error" if status == 500 else message
        # Keep headers the exception carries (Allow on 405, WWW-Authenticate on 401).
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(status, message, headers) if _wants_json() else _html_error(status, message)

    @app.errorhandler(RedisError)
    @app.errorhandler(StoreError)
    def store_down(exc: Exception) -> Response:
        # The store itself is unreachable: the one case we answer 503 (a dead worker only makes data stale).
        log.warning("store unavailable on %s: %s", request.path, exc)
        message = "store unavailable; retry shortly"
        return error_response(503, message, {"Retry-After": "2"}) if _wants_json() else _html_error(503, message)
