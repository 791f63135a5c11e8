"""Per-client rate limits on /api/* (flask-limiter) and client addresses behind trusted proxies (ProxyFix)."""
from __future__ import annotations

from typing import Callable

from flask import Blueprint, Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

from app.settings import Settings


def init_app(app: Flask, settings: Settings, blueprint: Blueprint, not_modified: Callable[[], bool]) -> Limiter:
    """Limit `blueprint` to RATE_LIMIT per client address; conditional hits (`not_modified`) are not counted."""
    if settings.trusted_proxies > 0:
        # Only this many hops of X-Forwarded-For are believed; with 0 a client could pick its own address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    # Redis makes the budget one across workers and instances; memory:// counts per process.
    storage = settings.redis_url.reveal() if settings.redis_url else "memory://"
    limiter = Limiter(get_remote_address, app=app, storage_uri=storage, headers_enabled=True,
                      retry_after="delta-seconds", strategy="moving-window", swallow_errors=True,
                      key_prefix="lb-limits")
    limiter.request_filter(not_modified)
    limiter.limit(settings.rate_limit)(blueprint)
    return limiter
