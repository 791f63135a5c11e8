"""The REST short-circuit: polls of /api/accounts[/<index>] answered from the mirror, before Flask.

Polling is most of our traffic, and building a Flask request (routing, hooks, the limiter's context) cost more
than the answer itself. So, while the mirror is in sync, this layer answers:
- a matching `If-None-Match` on either route with the 304 (never counted by the rate limiter: `api.not_modified`);
- any other GET of one tracked account with its 200, or the JSON 429 once the client's budget is spent, counting
  the request in flask-limiter's own storage, under its limit and key (`app.rest.limits.ClientBudget`): one budget
  for both.
Each answer has exactly the status line, headers and body the Flask view gives for the same request, after the
same token check, and is counted in `lb_http_requests_total` (and its latency) under the same route; a 429 is
logged as Flask's are (`limits.log_refused`). Anything else (bad token, bad index, untracked account, mirror not in
sync, limiter storage down, any error) goes to Flask untouched, which answers as it always did.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from app import auth
from app.errors import error_response
from app.rest.api import ACCOUNT_ENDPOINT, ACCOUNTS_ENDPOINT
from app.rest.conditional import Answer, account_resource, answer, list_resource
from app.rest.limits import log_refused
from core.accounts import MAX_ACCOUNT_INDEX

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from app.services import Services

log = logging.getLogger(__name__)
LIST_PATH = "/api/accounts"
ACCOUNT_PREFIX = "/api/accounts/"
LIST_ROUTE = "/api/accounts"
ACCOUNT_ROUTE = "/api/accounts/<index>"  # the URL rule, as metrics.py labels Flask's requests
Reply = tuple[str, list[tuple[str, str]], bytes]


class Shortcut:
    """WSGI middleware in front of the Flask app `app`, answering from the process's `services`."""

    def __init__(self, app: WSGIApplication, services: Services) -> None:
        self.app = app
        self.settings = services.settings
        self.reader = services.reader
        self.status = services.status
        self.metrics = services.metrics
        self.budget = services.budget
        self.cors = bool(services.settings.cors_origins)
        # The labelled children (request counter, latency histogram): .labels() locks and hashes per call.
        self._counters: dict[tuple[str, str], tuple[Any, Any]] = {}

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # A browser on another origin (CORS_ORIGINS) goes through Flask, where flask-cors answers it.
        if environ.get("REQUEST_METHOD") == "GET" and not (self.cors and environ.get("HTTP_ORIGIN")):
            path = environ.get("PATH_INFO", "")
            if path == LIST_PATH or path.startswith(ACCOUNT_PREFIX):
                started = time.perf_counter()
                try:
                    reply = self._reply(environ, path)
                except Exception:  # noqa: BLE001 - Flask answers (and logs) whatever went wrong here
                    log.debug("shortcut: passing through", exc_info=True)
                    reply = None
                if reply is not None:
                    status, headers, body = reply
                    start_response(status, headers)
                    route = LIST_ROUTE if path == LIST_PATH else ACCOUNT_ROUTE
                    counter, latency = self._series(route, status[:3])
                    counter.inc()
                    latency.observe(time.perf_counter() - started)
                    if status.startswith("429"):
                        log_refused(environ.get("REMOTE_ADDR"), route, self.budget.item.get_expiry())
                    return [body] if body else []
        return self.app(environ, start_response)

    def _series(self, route: str, status: str) -> tuple[Any, Any]:
        series = self._counters.get((route, status))
        if series is None:
            series = self._counters[route, status] = (self.metrics.requests.labels(route=route, status=status),
                                                      self.metrics.latency(route, status))
        return series

    def _reply(self, environ: WSGIEnvironment, path: str) -> Reply | None:
        """The 304, 200 or 429 Flask would give, or None (let Flask answer)."""
        if not auth.token_matches(self.settings, auth.bearer(environ.get("HTTP_AUTHORIZATION", ""))):
            return None  # Flask gives the 401 (and the limiter counts it, as for any bad token)
        ttl = self.settings.cache_ttl
        if path == LIST_PATH:
            snapshots = self.reader.held_accounts()
            if snapshots is None:
                return None
            resource = list_resource(snapshots, ttl)
        else:
            raw = path[len(ACCOUNT_PREFIX):]
            # The view's own checks (api.parse_index): anything odd goes to Flask for its 400.
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or int(raw) > MAX_ACCOUNT_INDEX:
                return None
            snapshot = self.reader.held(int(raw))
            if snapshot is None:
                return None  # untracked, or the mirror is not trusted now: Flask reads the store
            resource = account_resource(snapshot, ttl)
        result = answer(resource, self.status.poll_interval(), environ.get("HTTP_IF_NONE_MATCH"))
        if result.status == 304:  # not counted, but the client still learns where its budget stands
            endpoint = ACCOUNTS_ENDPOINT if path == LIST_PATH else ACCOUNT_ENDPOINT
            return "304 NOT MODIFIED", [*result.headers, *self.budget.peek(environ.get("REMOTE_ADDR"), endpoint)], b""
        if path == LIST_PATH:
            return None  # the list's 200 stays with Flask
        return self._spend(environ, result)

    def _spend(self, environ: WSGIEnvironment, result: Answer) -> Reply | None:
        """Count the request against the client's budget: the 200, or the JSON 429, each with the limiter's
        headers in flask-limiter's order."""
        data = result.data  # before counting: a failure here leaves Flask a request not yet counted
        spent = self.budget.spend(environ.get("REMOTE_ADDR"))
        if spent is None:
            return None
        allowed, limit_headers = spent
        if not allowed:
            refused = error_response(429, str(self.budget.item))  # the body and headers of Flask's own 429
            return "429 TOO MANY REQUESTS", [*refused.headers.to_wsgi_list(), *limit_headers], refused.get_data()
        return "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                          *result.headers, *limit_headers], data
