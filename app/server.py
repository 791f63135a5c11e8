"""The web's connection edge: gunicorn's worker with our pywsgi handler (`worker_class` in gunicorn.conf.py).

gunicorn's gevent worker serves each connection with a `gevent.pywsgi.WSGIHandler` (`wsgi_handler`);
gevent-websocket's `GeventWebSocketWorker` sets it to its `WebSocketHandler`, which upgrades requests before any
WSGI code runs. `Handler` subclasses that handler, which is the one place where a connection is seen before its
request is parsed, and where pywsgi writes its own error lines:

- a per-address cap on open HTTP connections (`WEB_CONNS_PER_ADDRESS`): the next one is answered 429 and closed
  before anything is read (WebSockets leave the count once app/ws/transport.py takes their socket over). Applied
  to the peer address only when `TRUSTED_PROXIES` is 0: behind a proxy every peer is the proxy;
- a header deadline (`WEB_HEADER_TIMEOUT_S`): the request line and headers must arrive within it, in total
  (a gevent.Timeout around pywsgi's `read_requestline` + `read_request`, so a byte every few seconds does not
  keep it alive), or the connection is closed (408 when part of a request arrived). An idle keep-alive connection
  gets the same deadline for its next request;
- malformed requests and upgrades answered with JSON 4xx, never a traceback: an unparsable request line (such as
  `HTTP/9.9`), a WebSocket upgrade over HTTP/1.0 (gevent-websocket would say "402 Bad Request"), a
  `Sec-WebSocket-Key` that is not 16 bytes of base64 (gevent-websocket would raise: 500 and a traceback);
- pywsgi's own error lines (which quote the request line: `?token=...` included) go through logging, credentials
  masked, instead of straight to stderr;
- a send deadline (SEND_TIMEOUT_FACTOR x the header deadline: 30 s by default): a client that requests and never
  reads (pipelined requests for the OpenAPI document, no token needed) blocked its handler in sendall for ever; a
  response not taken by the socket within it ends the connection, as a vanished peer does;
- a bound on the request body nobody reads (no route reads one): after the response pywsgi would read and discard
  the rest of the body with no deadline, so headers followed by a byte every few seconds held the connection
  forever. A body over MAX_DISCARD_BYTES, a chunked one, or one not in within the header deadline closes the
  connection instead.
"""
from __future__ import annotations

import base64
import binascii
import errno
import logging
import re
from collections import Counter
from typing import Any, ClassVar

import gevent
import orjson
from gevent.pywsgi import Input
from geventwebsocket.gunicorn.workers import GeventWebSocketWorker
from geventwebsocket.handler import WebSocketHandler
from werkzeug.http import HTTP_STATUS_CODES

from core.logs import redact

log = logging.getLogger("app.server")
WEBSOCKET_PATHS = ("/ws", "/stream")
# One response write may wait this many header deadlines (WEB_HEADER_TIMEOUT_S) for the client's socket to take it.
SEND_TIMEOUT_FACTOR = 3
MAX_DISCARD_BYTES = 65536     # unread request body drained to keep a connection alive; more closes it instead
# A query parameter or header that carries a credential: its value is masked in every line we write.
_CREDENTIAL = re.compile(r"(?i)((?:[?&;]|\b)(?:token|auth|api_token|key|password)=)[^&\s'\"]*"
                         r"|((?:authorization|x-api-key)[\"']?\s*[:=]\s*[\"']?)[^\r\n'\"]*")


def mask_credentials(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with credential query values and Authorization header values masked, and known secrets too."""
    text = _CREDENTIAL.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)
    return redact(text, secrets)


class CredentialFilter(logging.Filter):
    """For loggers with their own handlers (gunicorn's): masks credentials the way `mask_credentials` does."""

    def __init__(self, secrets: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_credentials(record.getMessage(), self.secrets)
        record.args = None
        return True


def http_error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete HTTP/1.1 error response with the web's JSON error body, closing the connection."""
    reason = HTTP_STATUS_CODES.get(status, "Error")
    body = orjson.dumps({"error": reason, "status": status, "message": message})
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}",
             "Cache-Control: no-store", "Connection: close", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _HeaderTimeout(Exception):
    """The header deadline passed (raised into the handler's greenlet by gevent.Timeout)."""


class _SendTimeout(Exception):
    """The send deadline passed (raised into the handler's greenlet by gevent.Timeout)."""


class _Body(Input):
    """pywsgi's request body, whose leftover is drained only when small and quick: a client that sends headers
    and then a byte every few seconds would otherwise hold its connection (and a greenlet) for ever."""

    __slots__ = ("handler",)

    def _discard(self) -> None:
        handler: Handler = self.handler
        left = (self.content_length or 0) - self.position
        if self._chunked_input_error or (left <= 0 and not self.chunked_input):
            return
        if self.chunked_input or left > MAX_DISCARD_BYTES:
            handler.close_connection = True  # not worth reading: end the connection after the response
            return
        try:
            with gevent.Timeout(handler.header_timeout_s, _HeaderTimeout):
                super()._discard()
        except _HeaderTimeout:
            handler.close_connection = True


class Handler(WebSocketHandler):
    """gevent-websocket's handler with the edge's limits; configured once per worker by `Worker.run`."""

    header_timeout_s: ClassVar[float] = 10.0
    send_timeout_s: ClassVar[float] = SEND_TIMEOUT_FACTOR * 10.0
    conns_per_address: ClassVar[int] = 256
    cap_addresses: ClassVar[bool] = True
    secrets: ClassVar[tuple[str, ...]] = ()
    open_per_address: ClassVar[Counter[str]] = Counter()

    _deadline: gevent.Timeout | None = None

    # -- the connection --------------------------------------------------------------------------------------
    def handle(self) -> None:
        address = self.client_address[0] if isinstance(self.client_address, tuple) else str(self.client_address)
        counts = self.open_per_address
        if self.cap_addresses and counts[address] >= self.conns_per_address:
            try:
                self.socket.sendall(http_error(429, "too many open connections from this address",
                                               (("Retry-After", "1"),)))
            except OSError:
                pass
            self.status = "429"
            self._close()
            return
        counts[address] += 1
        try:
            super().handle()
        finally:
            counts[address] -= 1
            if counts[address] <= 0:
                del counts[address]

    def _close(self) -> None:
        try:
            self.socket.close()
        except OSError:
            pass
        self.__dict__.pop("socket", None)

    # -- the header deadline ---------------------------------------------------------------------------------
    def read_requestline(self) -> str:
        self._deadline = gevent.Timeout.start_new(self.header_timeout_s, _HeaderTimeout)
        try:
            line: str = super().read_requestline()
        except _HeaderTimeout:
            self._deadline = None
            return ""  # nothing (or half a line) within the deadline: pywsgi closes the connection
        except BaseException:
            self._stop_deadline()
            raise
        if not line:
            self._stop_deadline()
        return line

    def read_request(self, raw_requestline: str) -> bool:
        try:
            ok: bool = super().read_request(raw_requestline)
            return ok
        except _HeaderTimeout:
            self._deadline = None
            raise TimeoutError("headers not complete within the deadline") from None
        finally:
            self._stop_deadline()

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.close()
            self._deadline = None

    def _sendall(self, data: bytes) -> None:
        try:
            with gevent.Timeout(self.send_timeout_s, _SendTimeout):
                super()._sendall(data)
        except _SendTimeout:
            # EPIPE is one of pywsgi's ignored socket errors: the connection is closed, nothing logged as a crash.
            raise BrokenPipeError(errno.EPIPE, "client did not read the response in time") from None

    def get_environ(self) -> dict[str, Any]:
        environ: dict[str, Any] = super().get_environ()
        plain: Input = getattr(self, "wsgi_input")  # noqa: B009 - pywsgi declares it untyped (None)
        body = _Body(plain.rfile, plain.content_length, socket=plain.socket, chunked_input=plain.chunked_input)
        body.handler = self
        self.wsgi_input = body
        if environ.get("wsgi.input") is plain:
            environ["wsgi.input"] = body
        return environ

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        self._stop_deadline()  # pywsgi returned before read_request (a 414, an empty line)
        if isinstance(result, tuple) and result[0] == "414":
            return "414", http_error(414, "request line too long")
        return result

    # -- malformed requests: JSON 4xx, one redacted log line -------------------------------------------------
    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        if isinstance(ex, TimeoutError):
            self.log_error("(from %s) %s", self.client_address, ex)
            return "408", http_error(408, "request headers not received in time")
        self.log_error("invalid request (from %s): %s", self.client_address,
                       getattr(ex, "formatted_message", None) or str(ex) or type(ex).__name__)
        return "400", http_error(400, "malformed HTTP request")

    def log_request(self) -> None:
        """No access log (gunicorn.conf.py: accesslog None; /metrics counts requests). gevent-websocket's formats
        every request line, a `?token=` included, before its logger (set to WARNING in wsgi.py) drops it: 4% of a
        304's CPU for nothing."""

    def log_error(self, msg: str, *args: Any) -> None:
        """pywsgi's error lines (they quote the request line): through logging, credentials masked."""
        try:
            text = msg % args if args else msg
        except (TypeError, ValueError):
            text = f"{msg!r} {args!r}"
        log.warning("%s", mask_credentials(text, self.secrets))

    def _log_error(self, t: type[BaseException], v: BaseException, tb: Any) -> None:
        """An unexpected error in the handler (not in Flask, which logs its own): one masked line, no environ."""
        if issubclass(t, gevent.GreenletExit):
            return
        line = mask_credentials(getattr(self, "requestline", "") or "", self.secrets)
        log.error("error while serving %r from %s: %s", line, self.client_address,
                  mask_credentials(f"{t.__name__}: {v}", self.secrets))

    # -- WebSocket upgrades ----------------------------------------------------------------------------------
    def upgrade_websocket(self) -> Any:
        environ = self.environ
        if (environ.get("REQUEST_METHOD") != "GET" or environ.get("HTTP_UPGRADE", "").lower() != "websocket"
                or "upgrade" not in environ.get("HTTP_CONNECTION", "").lower()):
            return None  # not an upgrade: plain HTTP
        if self.request_version != "HTTP/1.1":
            return self._refuse_upgrade(400, "a WebSocket upgrade needs HTTP/1.1")
        version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
        if version not in self.SUPPORTED_VERSIONS:  # missing too: gevent-websocket would answer 426 with no body
            return self._refuse_upgrade(426, "unsupported Sec-WebSocket-Version",
                                        [("Sec-WebSocket-Version", "13")])
        key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
        if not _valid_key(key):
            return self._refuse_upgrade(400, "Sec-WebSocket-Key must be 16 bytes in base64")
        return super().upgrade_websocket()

    def _refuse_upgrade(self, status: int, message: str,
                        headers: list[tuple[str, str]] | None = None) -> list[bytes]:
        body = orjson.dumps({"error": HTTP_STATUS_CODES.get(status, "Error"), "status": status, "message": message})
        self.close_connection = True
        self.start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Error')}",
                            [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                             ("Cache-Control", "no-store"), *(headers or [])])
        return [body]


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


class Worker(GeventWebSocketWorker):
    """GeventWebSocketWorker serving connections with `Handler`, configured from the web's settings."""

    wsgi_handler = Handler

    def run(self) -> None:
        from core.settings import load

        settings = load()
        web = settings.web
        Handler.header_timeout_s = web.header_timeout_s
        Handler.send_timeout_s = SEND_TIMEOUT_FACTOR * web.header_timeout_s
        Handler.conns_per_address = web.conns_per_address
        Handler.cap_addresses = settings.trusted_proxies == 0
        Handler.secrets = tuple(settings.secrets())
        credential_filter = CredentialFilter(Handler.secrets)
        for name in ("gunicorn.error", "gunicorn.access"):
            for handler in logging.getLogger(name).handlers:
                handler.addFilter(credential_filter)
        super().run()
