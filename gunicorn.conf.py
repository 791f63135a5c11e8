"""gunicorn settings for the web process. Read by `gunicorn -c gunicorn.conf.py wsgi:app`.

The port comes from core.settings (PORT); the worker count from WEB_CONCURRENCY, which gunicorn itself reads
(default 1 here: each worker has its own hub, store watcher and metrics; more workers split REST and /ws clients
over more cores, which pays only on an instance with cores to spare: docs/deploy.md).

The worker class is gevent-websocket's, with our pywsgi handler (app/server.py): per-address connection cap,
header deadline, JSON 4xx for malformed requests and upgrades, credentials masked in the server's own log lines.
It serves a WebSocket only on a Flask route declared `websocket=True`: on any other route the handshake succeeds
and the connection is then closed at once, silently.
"""
import resource
import signal
import sys

from core.preflight import check_web
from core.settings import SettingsError, load

try:
    _settings = load()
    check_web(_settings)  # WEB_CONCURRENCY above 1 needs REDIS_URL (docs/deploy.md)
except SettingsError as exc:  # `python web.py` checks first; this keeps a bare `gunicorn` run free of tracebacks too
    sys.exit(f"configuration error: {exc}")

# Each WebSocket holds a descriptor; many systems start processes at a soft limit of 1,024. Raise it to the hard
# limit (workers inherit it from this master process). WS_MAX_CLIENTS bounds WebSockets below it.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < _hard != resource.RLIM_INFINITY:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

# gevent-websocket's worker with our handler: /ws and /stream are declared with websocket=True (app/ws/route.py).
worker_class = "app.server.Worker"
bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency   # WEB_CONCURRENCY, checked by core.settings (gunicorn would read it unchecked)
# Requests in flight at once. A WebSocket holds a slot only during its handshake: app/ws/transport.py then takes the
# socket over, so open WebSockets are bounded by file descriptors, not by this.
worker_connections = 10000
# honcho and Render send SIGKILL after a few seconds: close WebSockets ourselves and keep the wait short.
graceful_timeout = 3
timeout = 30
preload_app = False                   # gevent patches after fork; the hub starts lazily in each worker
control_socket_disable = True         # gunicorn 27 otherwise creates ~/.gunicorn/gunicorn.ctl
accesslog = None                      # one line per request is noise at thousands of polls; use /metrics
errorlog = "-"
loglevel = "warning"


def post_worker_init(worker) -> None:  # noqa: ANN001 - gunicorn hook signature
    """On SIGTERM, stop the store watcher and close every WebSocket with 1001 before gunicorn's graceful wait.
    The app is loaded by now: its start-up heap is frozen out of full collections (core/heap.py)."""
    from core.heap import freeze_startup_heap

    freeze_startup_heap()
    previous = worker.handle_exit

    def handle_exit(sig, frame) -> None:  # noqa: ANN001
        if hasattr(worker.wsgi, "extensions"):
            from app.services import of

            of(worker.wsgi).shutdown()
        previous(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
