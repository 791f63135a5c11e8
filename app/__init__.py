"""The web process: `create_app(settings)` is the only place a Flask app is built."""
from __future__ import annotations

from flask import Flask

from core.settings import Settings


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: REST, /ws fan-out, dashboard, limits, metrics, errors; all from `settings` (the web's knobs
    from `settings.web`)."""
    from app import compat, dashboard, errors, guard, metrics, ready
    from app import services as services_module
    from app.compat.stream import Encoder
    from app.feed.mirror import Mirror
    from app.feed.watcher import Watcher
    from app.rest import alerts as rest_alerts
    from app.rest import api, limits
    from app.rest import history as rest_history
    from app.rest.reader import Reader
    from app.rest.shortcut import Shortcut
    from app.status import StatusCache
    from app.ws import route as ws
    from app.ws.hub import Hub
    from core import settings as settings_module
    from core.store import Store

    settings = settings if settings is not None else settings_module.load()
    web = settings.web
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # the default provider has it; the base class not
    store = Store.from_settings(settings)
    status = StatusCache(store, settings.cache_ttl, settings.poll_interval, web.status_every_s)
    process_metrics = metrics.Metrics()
    hub = Hub(store, status, settings.cache_ttl, process_metrics, web, settings.ws_max_clients)
    watcher = Watcher(store, Mirror(store, web.mirror_max_age_s), web.status_every_s, hub)
    errors.init_app(app)
    ready.init_app(app, settings, store)  # first: its CORS preflight answer comes before any limit
    metrics.init_app(app, process_metrics, settings, hub, store)
    limiter = limits.init_app(app, settings, api.api, api.not_modified, (api.ACCOUNT_ENDPOINT, api.ACCOUNTS_ENDPOINT))
    built = services_module.Services(
        settings=settings, store=store, status=status, metrics=process_metrics, watcher=watcher, hub=hub,
        reader=Reader(store, watcher),
        budget=limits.ClientBudget(limiter, settings.rate_limit, api.ACCOUNT_ENDPOINT, web.rate_limit_keys),
        stream_encoder=Encoder())
    services_module.init_app(app, built)
    status.snapshots = built.reader.held_accounts  # statuses from the mirror while it is trusted
    from app.ws.portfolio import PortfolioFeed
    hub.portfolio = PortfolioFeed(settings, built.reader.accounts)  # /ws?portfolio=1
    api.init_app(app)
    rest_history.init_app(app, settings, limiter)  # /api/accounts/<i>/fills, equity, events (app/rest/history.py)
    rest_alerts.init_app(app, settings, limiter)  # /api/alerts, POST /api/alerts/test (app/rest/alerts.py)
    ws.init_app(app)
    dashboard.init_app(app)
    compat.init_app(app)  # Lighter-compatible routes (/api/v1/*, GET / as JSON, /stream): app/compat
    # Polls the mirror can answer never reach Flask.
    app.wsgi_app = Shortcut(app.wsgi_app, built)  # type: ignore[method-assign]  # Flask documents wrapping it
    checks = guard.init_app(app, limiter.storage, web)  # refused tokens cost budget on every route (app/guard.py)
    app.wsgi_app = ws.Entry(app.wsgi_app, built, checks)  # type: ignore[method-assign]  # /ws upgrades skip Flask
    limits.trust_proxies(app, settings)  # outermost, so the shortcut's budget sees the client's address too
    return app
