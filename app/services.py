"""The web process's services, built once by `create_app` and read by views with `services()`: one typed object
instead of string-keyed `app.extensions` entries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from app.compat.stream import Encoder
    from app.feed.watcher import Watcher
    from app.metrics import Metrics
    from app.rest.limits import ClientBudget
    from app.rest.reader import Reader
    from app.status import StatusCache
    from app.ws.hub import Hub
    from core.settings import Settings
    from core.store import Store

_KEY = "lighter_broadcaster"


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    status: StatusCache        # the worker's status, read at most once per status_every_s
    metrics: Metrics
    watcher: Watcher           # the one store watcher: keeps the mirror current, feeds the hub
    hub: Hub                   # /ws and /stream clients
    reader: Reader             # what REST serves: the mirror while in sync, else the store
    budget: ClientBudget       # RATE_LIMIT on the account route, spent before Flask by the shortcut
    stream_encoder: Encoder    # /stream frames, built once per change for every Lighter client

    def shutdown(self) -> None:
        """SIGTERM: stop following the store and close every WebSocket with 1001."""
        self.watcher.stop()
        self.hub.shutdown()


def init_app(app: Flask, built: Services) -> None:
    app.extensions[_KEY] = built


def of(app: Flask) -> Services:
    """The services of `app` (outside a request: gunicorn hooks, tests)."""
    built: Services = app.extensions[_KEY]
    return built


def services() -> Services:
    """The services of the app handling the current request."""
    built: Services = current_app.extensions[_KEY]
    return built
