"""gunicorn settings for the web process. Read by `gunicorn -c gunicorn.conf.py wsgi:app`.

The port comes from core.settings (PORT); the worker count from WEB_CONCURRENCY, which gunicorn itself reads
(default 1 here: each worker has its own hub and metrics, so more workers help REST throughput, not fan-out).

The worker class is gevent-websocket's. It serves a WebSocket only on a Flask route declared `websocket=True`: on
any other route the handshake succeeds and the connection is then closed at once, silently.
"""
import resource
import signal

from core.settings import load

_settings = load()

# Each WebSocket holds a descriptor; many systems start processes at a soft limit of 1,024. Raise it to the hard
# limit (workers inherit it from this master process). WS_MAX_CLIENTS bounds WebSockets below it.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft < _hard != resource.RLIM_INFINITY:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

# gevent-websocket's worker: /ws and /stream are declared with websocket=True (app/ws/route.py).
worker_class = "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"
# WEB_CONCURRENCY, validated by core.settings (above 1 only with REDIS_URL; docs/deploy.md), not gunicorn's raw read.
workers = _settings.web.concurrency
bind = f"0.0.0.0:{_settings.port}"
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
    """On SIGTERM, stop the store watcher and close every WebSocket with 1001 before gunicorn's graceful wait."""
    previous = worker.handle_exit

    def handle_exit(sig, frame) -> None:  # noqa: ANN001
        if hasattr(worker.wsgi, "extensions"):
            from app.services import of

            of(worker.wsgi).shutdown()
        previous(sig, frame)

    signal.signal(signal.SIGTERM, handle_exit)
