"""The 304 short-circuit: conditional polls of /api/accounts[/<index>] answered from the mirror, before Flask.

A poller that already has the current version is the common case and costs us the most per useful byte, so a
matching `If-None-Match` is answered here without building a Flask request. It gives exactly what the Flask view
gives for the same request (status line, ETag, Cache-Control, X-Poll-Interval), after the same token check, and
is counted in `lb_http_requests_total` under the same route like any 304; the rate limiter never counts 304s
(`api.not_modified`), so skipping it changes nothing. Anything else (no match, bad token, bad index, mirror not
in sync, any error) goes to Flask untouched, which answers as it always did.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from werkzeug.http import parse_etags

from app import auth
from app.mirror import Mirror
from app.settings import MAX_ACCOUNT_INDEX
from app.views import account_body, etag, list_etag

log = logging.getLogger(__name__)
LIST_PATH = "/api/accounts"
ACCOUNT_PREFIX = "/api/accounts/"
LIST_ROUTE = "/api/accounts"
ACCOUNT_ROUTE = "/api/accounts/<index>"  # the URL rule, as metrics.py labels Flask's requests


class NotModified:
    """WSGI middleware; `app` is the wrapped WSGI app, `extensions` the Flask app's (settings, hub, metrics)."""

    def __init__(self, app: Callable, extensions: dict[str, Any]) -> None:
        self.app = app
        self.settings = extensions["lb_settings"]
        self.hub = extensions["lb_hub"]
        self.status = extensions["lb_status"]
        self.metrics = extensions["lb_metrics"]

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        matches = environ.get("HTTP_IF_NONE_MATCH")
        if matches and environ.get("REQUEST_METHOD") == "GET":
            path = environ.get("PATH_INFO", "")
            if path == LIST_PATH or path.startswith(ACCOUNT_PREFIX):
                try:
                    headers = self._not_modified(environ, path, matches)
                except Exception:  # noqa: BLE001 - Flask answers (and logs) whatever went wrong here
                    log.debug("shortcut: passing through", exc_info=True)
                    headers = None
                if headers is not None:
                    start_response("304 NOT MODIFIED", headers)
                    route = LIST_ROUTE if path == LIST_PATH else ACCOUNT_ROUTE
                    self.metrics.requests.labels(route=route, status="304").inc()
                    return []
        return self.app(environ, start_response)

    def _not_modified(self, environ: dict[str, Any], path: str, matches: str) -> list[tuple[str, str]] | None:
        """The 304's headers when the client's copy is current, else None (let Flask answer)."""
        if not auth.token_matches(self.settings, auth.bearer(environ.get("HTTP_AUTHORIZATION", ""))):
            return None  # Flask gives the 401 (and the limiter counts it, as for any bad token)
        mirror = Mirror.serving(self.hub)
        if mirror is None:
            return None
        ttl = self.settings.cache_ttl
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
        # Fast path for what pollers send back (our own header); else werkzeug's parser, as Flask uses.
        if matches != weak and not parse_etags(matches).contains_weak(tag):
            return None
        return [("ETag", weak), ("Cache-Control", "no-cache"), ("X-Poll-Interval", f"{self.status.poll_interval():g}")]
