"""The REST short-circuit: polls of /api/accounts[/<index>] answered from the mirror, before Flask.

Polling is most of our traffic, and building a Flask request (routing, hooks, the limiter's context) cost more
than the answer itself. So, while the mirror is in sync, this layer answers:
- a matching `If-None-Match` on either route with the 304 (never counted by the rate limiter: `api.not_modified`);
- any other GET of one tracked account with its 200, or the JSON 429 once the client's budget is spent, counting
  the request in flask-limiter's own storage, under its limit and key (`app.rest.limits.Budget`): one budget for both.
Each answer has exactly the status line, headers and body the Flask view gives for the same request, after the
same token check, and is counted in `lb_http_requests_total` under the same route. Anything else (bad token, bad
index, untracked account, mirror not in sync, limiter storage down, any error) goes to Flask untouched, which
answers as it always did.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from werkzeug.http import parse_etags

from app import auth
from app.errors import error_response
from app.feed.mirror import Mirror
from app.rest.limits import Budget
from app.status import account_body, etag, list_etag
from core.settings import MAX_ACCOUNT_INDEX

log = logging.getLogger(__name__)
LIST_PATH = "/api/accounts"
ACCOUNT_PREFIX = "/api/accounts/"
LIST_ROUTE = "/api/accounts"
ACCOUNT_ROUTE = "/api/accounts/<index>"  # the URL rule, as metrics.py labels Flask's requests
Answer = tuple[str, list[tuple[str, str]], bytes]


class Shortcut:
    """WSGI middleware; `app` is the wrapped WSGI app, `extensions` the Flask app's (settings, hub, metrics,
    and `lb_budget`: the account route's rate limit)."""

    def __init__(self, app: Callable, extensions: dict[str, Any]) -> None:
        self.app = app
        self.settings = extensions["lb_settings"]
        self.hub = extensions["lb_hub"]
        self.status = extensions["lb_status"]
        self.metrics = extensions["lb_metrics"]
        self.budget: Budget = extensions["lb_budget"]
        self._counters: dict[tuple[str, str], Any] = {}  # the labelled children: .labels() locks and hashes per call

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            if path == LIST_PATH or path.startswith(ACCOUNT_PREFIX):
                try:
                    answer = self._answer(environ, path)
                except Exception:  # noqa: BLE001 - Flask answers (and logs) whatever went wrong here
                    log.debug("shortcut: passing through", exc_info=True)
                    answer = None
                if answer is not None:
                    status, headers, body = answer
                    start_response(status, headers)
                    route = LIST_ROUTE if path == LIST_PATH else ACCOUNT_ROUTE
                    self._counter(route, status[:3]).inc()
                    return [body] if body else []
        return self.app(environ, start_response)

    def _counter(self, route: str, status: str) -> Any:
        counter = self._counters.get((route, status))
        if counter is None:
            counter = self._counters[route, status] = self.metrics.requests.labels(route=route, status=status)
        return counter

    def _answer(self, environ: dict[str, Any], path: str) -> Answer | None:
        """The 304, 200 or 429 Flask would give, or None (let Flask answer)."""
        if not auth.token_matches(self.settings, auth.bearer(environ.get("HTTP_AUTHORIZATION", ""))):
            return None  # Flask gives the 401 (and the limiter counts it, as for any bad token)
        mirror = Mirror.serving(self.hub)
        if mirror is None:
            return None
        ttl = self.settings.cache_ttl
        body: dict[str, Any] | None = None
        if path == LIST_PATH:
            tag = list_etag([account_body(s, ttl) for s in mirror.accounts()])
        else:
            raw = path[len(ACCOUNT_PREFIX):]
            # The view's own checks (api.parse_index): anything odd goes to Flask for its 400.
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or int(raw) > MAX_ACCOUNT_INDEX:
                return None
            snapshot = mirror.account(int(raw))
            if snapshot is None:
                return None
            body = account_body(snapshot, ttl)
            tag = etag(body.get("seq", 0), body["stale"])
        weak = f'W/"{tag}"'
        headers = [("ETag", weak), ("Cache-Control", "no-cache"),
                   ("X-Poll-Interval", f"{self.status.poll_interval():g}")]
        matches = environ.get("HTTP_IF_NONE_MATCH")
        # Fast path for what pollers send back (our own header); else werkzeug's parser, as Flask uses.
        if matches and (matches == weak or parse_etags(matches).contains_weak(tag)):
            return "304 NOT MODIFIED", headers, b""
        if body is None:
            return None  # the list's 200 stays with Flask
        return self._spend(environ, body, headers)

    def _spend(self, environ: dict[str, Any], body: dict[str, Any], headers: list[tuple[str, str]]) -> Answer | None:
        """Count the request against the client's budget: the 200 with `body`, or the JSON 429, each with the
        limiter's headers in flask-limiter's order."""
        data = orjson.dumps(body)  # before counting: a failure here leaves Flask a request not yet counted
        spent = self.budget.spend(environ.get("REMOTE_ADDR"))
        if spent is None:
            return None
        allowed, limit_headers = spent
        if not allowed:
            refused = error_response(429, str(self.budget.item))  # the body and headers of Flask's own 429
            return "429 TOO MANY REQUESTS", [*refused.headers.to_wsgi_list(), *limit_headers], refused.get_data()
        return "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data))), *headers,
                          *limit_headers], data
