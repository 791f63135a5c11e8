"""The web process: `create_app(settings)` is the only place a Flask app is built."""
from __future__ import annotations

from flask import Flask

from core.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: REST, /ws fan-out, dashboard, limits, metrics, errors; all from `settings`."""
    from app import dashboard, errors, metrics
    from app.rest import api, limits
    from app.status import StatusCache
    from app.ws import route as ws
    from app.ws.hub import Hub
    from core import settings as settings_module
    from core.store import Store

    settings = settings if settings is not None else settings_module.load()
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False
    store = Store.from_settings(settings)
    status = StatusCache(store, settings.cache_ttl, settings.poll_interval)
    process_metrics = metrics.Metrics()
    app.extensions.update(lb_settings=settings, lb_store=store, lb_status=status, lb_metrics=process_metrics,
                          lb_hub=Hub(store, status, settings.cache_ttl, process_metrics,
                                     max_clients=settings.ws_max_clients))
    errors.init_app(app)
    metrics.init_app(app, process_metrics)
    limiter = limits.init_app(app, settings, api.api, api.not_modified)
    app.extensions["lb_budget"] = limits.Budget(limiter, settings.rate_limit, api.ACCOUNT_ENDPOINT)
    api.init_app(app)
    ws.init_app(app)
    dashboard.init_app(app)
    from app import compat  # Lighter-compatible routes (/api/v1/*, GET / as JSON, /stream): app/compat
    compat.init_app(app)
    from app.rest.shortcut import Shortcut  # polls the mirror can answer never reach Flask
    app.wsgi_app = Shortcut(app.wsgi_app, app.extensions)
    limits.trust_proxies(app, settings)  # outermost, so the shortcut's budget sees the client's address too
    return app
