"""The `/stream` route: handshake, token, and the handling of Lighter client frames (subscribe, ping...)."""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import gevent
import orjson
from flask import Blueprint, Flask, Response, abort, request
from gevent import get_hub
from redis.exceptions import RedisError

from app.compat import auth, errors, frames
from app.compat.errors import LighterError
from app.compat.stream import LighterClient
from app.feed.mirror import Mirror
from app.guard import Admission, guard
from app.metrics import STREAM_ROUTE
from app.services import Services, services
from app.ws import transport
from app.ws.codes import CloseCode
from app.ws.route import REFUSED_GRACE_S, admit
from core.store import Store, StoreError

log = logging.getLogger(__name__)
bp = Blueprint("lighter_stream", __name__)
MAX_MESSAGE = 4096            # subscribe frames are small; bigger ones are closed with 1009
MAX_BAD_FRAMES = 20           # error frames before we stop talking to a client that keeps sending garbage
MAX_SUBSCRIPTIONS = 100       # per connection, Lighter's documented limit (error 23001)
MESSAGES_PER_MINUTE = 200     # client frames per connection, Lighter's documented limit (error 30009)


class Session:
    """One /stream connection's protocol state (used by its client's handling greenlet only).

    A connection opened without our token is not registered with the hub (it holds no WS_MAX_CLIENTS slot and
    gets no changes) until a subscribe carries the right `auth`: `admitted` then registers it. Each wrong `auth`
    spends the address's failure budget (app/guard.py); once it is spent the connection is closed with 1008.
    """

    def __init__(self, client: LighterClient, store: Store, token: str | None, authorized: bool,
                 admitted: Callable[[], bool] | None = None, failed: Callable[[], bool] | None = None) -> None:
        self.client = client
        self.store = store
        self.token = token
        self.authorized = authorized  # our token came with the handshake: no per-subscribe `auth` needed
        self.admitted = admitted      # None once registered
        self.failed = failed
        self.mirror: Callable[[], Mirror | None] | None = None  # Watcher.serving
        self.bad_frames = 0
        self.recent: deque[float] = deque(maxlen=MESSAGES_PER_MINUTE)

    def error(self, err: LighterError, extra: dict[str, Any] | None = None) -> None:
        self.client.push({**frames.error(err), **(extra or {})})
        self.bad_frames += 1
        if self.bad_frames >= MAX_BAD_FRAMES:
            self.client.close(CloseCode.POLICY, "too many bad messages", flush=True)

    def over_rate(self) -> bool:
        now = time.monotonic()
        full = len(self.recent) == self.recent.maxlen and now - self.recent[0] < 60
        self.recent.append(now)
        return full

    def handle(self, message: str | bytes) -> None:
        """Apply one client frame; every refusal is a Lighter error frame."""
        try:
            command = orjson.loads(message)
        except orjson.JSONDecodeError:
            return self.error(errors.INVALID_JSON)
        if not isinstance(command, dict):
            return self.error(errors.INVALID_TYPE)
        kind = command.get("type")
        if kind == "ping":
            return self.client.push(frames.pong())
        if kind == "pong":
            return None  # the answer to our ping: nothing to do
        if kind in ("subscribe", "unsubscribe"):
            return self.subscription(kind, command)
        if isinstance(kind, str) and kind.startswith("jsonapi/"):
            # Read-only broadcaster: transactions go to Lighter itself. Replies to jsonapi echo the id.
            return self.error(errors.NOT_SUPPORTED, {"id": (command.get("data") or {}).get("id")}
                              if isinstance(command.get("data"), dict) else None)
        return self.error(errors.INVALID_TYPE)

    def subscription(self, kind: str, command: dict[str, Any]) -> None:
        parsed = frames.parse_channel(command.get("channel"))
        if parsed is None:
            return self.error(errors.INVALID_CHANNEL)
        name, account = parsed
        if kind == "unsubscribe":
            return None if self.client.unsubscribe(name, account) else self.error(errors.NOT_SUBSCRIBED)
        if not self.authorized:
            presented = command.get("auth")
            if not isinstance(presented, str) or not presented:
                return self.error(errors.auth_required(f"{name}:{account}"))
            if not auth.matches(self.token or "", [presented]):
                if self.failed is not None and not self.failed():
                    self.client.push(frames.error(errors.AUTH_INVALID))
                    self.client.close(CloseCode.POLICY, "too many refused tokens", flush=True)
                    return None
                return self.error(errors.AUTH_INVALID)
        if self.admitted is not None:
            admitted, self.admitted = self.admitted, None
            if not admitted():
                return None
        if (name, account) in self.client.channels:
            return self.error(errors.ALREADY_SUBSCRIBED)
        if len(self.client.channels) >= MAX_SUBSCRIPTIONS:
            return self.error(errors.TOO_MANY_SUBSCRIPTIONS)
        try:
            # The process's own copy when the watcher trusts it: a burst of subscribes costs no store round trip.
            mirror = self.mirror() if self.mirror is not None else None
            if account not in (mirror.tracked() if mirror is not None else self.store.tracked()):
                return self.error(errors.ACCOUNT_NOT_FOUND)
            self.client.watch(name, account)
            snapshot = mirror.account(account) if mirror is not None else None
            if snapshot is None:
                snapshot = self.store.account(account)
        except (StoreError, RedisError, OSError):
            log.warning("stream: store unavailable while subscribing to %s/%d", name, account, exc_info=True)
            if (name, account) in self.client.channels:
                self.client.unsubscribe(name, account, quiet=True)
            return self.error(errors.FETCH_FAILED)
        self.client.subscribe(name, account, snapshot)
        return None

    def receive(self, message: str | bytes) -> None:
        """One client frame (in order, in the client's handling greenlet)."""
        if self.over_rate():
            self.client.push(frames.error(errors.TOO_MANY_MESSAGES))
            self.client.close(CloseCode.POLICY, "too many messages", flush=True)
            return
        self.handle(message)


def _handshake_token(token: str | None) -> tuple[bool, bool]:
    """(authorized, refused): our token in the URL (`auth`, or `token` as on /ws) or a header authorizes the
    whole connection; a wrong one is refused; none leaves it to each subscribe's `auth` field (Lighter's way)."""
    if token is None:
        return True, False
    presented = auth.candidates(request.headers.get("Authorization"),
                                request.args.get("auth") or request.args.get("token"))
    if not presented:
        return False, False
    ok = auth.matches(token, presented)
    return ok, not ok


@bp.route("/stream", websocket=True)
def stream() -> Response:
    conn = transport.accept(request.environ, MAX_MESSAGE)
    if conn is None:  # only upgrade requests reach a websocket rule; belt and braces
        abort(400, "WebSocket upgrade required")
    svc = services()
    web = svc.settings.web
    secret = svc.settings.api_token
    token = secret.reveal() if secret is not None else None
    client = LighterClient(conn, web.ws_queue_frames, svc.metrics, web.ws_close_grace_s, svc.stream_encoder)
    client.backlog_bytes = web.ws_backlog_bytes
    client.when_closed(client.forget)  # release its subscriptions from the shared encoder
    authorized, refused = _handshake_token(token)
    # gevent-websocket has answered 101 before the view runs: a refusal is an error frame and a close. Nothing
    # before `register` takes a slot (app/ws/route.py's `admit`: failure budget, token, admission pacing).
    refusal = admit(conn.remote, not refused, guard(), pending=not authorized)
    if refusal is not None:
        code, error, _, retry = refusal
        svc.metrics.dropped(STREAM_ROUTE, error)
        client.close_grace_s = min(client.close_grace_s, REFUSED_GRACE_S)
        if code is CloseCode.UNAUTHORIZED:
            client.push(frames.error(errors.AUTH_INVALID))
            client.refuse(CloseCode.POLICY, "invalid auth")
        else:  # Lighter has no error code for these: the close code and its reason carry the retry hint
            client.refuse(code, f"{error}; retry_after={retry}" if retry is not None else error, flush=False)
        return Response(status=204)
    if authorized and not _register(client, svc):
        return Response(status=204)
    client.push(frames.connected(str(uuid.uuid4())))
    svc.watcher.ensure_started()
    session = Session(client, svc.store, token, authorized)
    session.mirror = svc.watcher.serving
    if not authorized:
        # Lighter's way: each subscribe carries `auth`. Until one does, the connection holds no slot, and it
        # must do so within WEB_STREAM_AUTH_TIMEOUT_S.
        address, checks = conn.remote, guard()
        failures = checks.failures
        # Paced in total only now that it has shown the token (app/ws/route.py: admit, `pending`).
        session.admitted = lambda: _admit_total(client, checks.admission, svc) and _register(client, svc, reading=True)
        session.failed = lambda: failures.fail(address)
        _deadline(client, session, web.stream_auth_timeout_s, lambda: failures.fail(address))
    # From here the connection lives on without this greenlet: frames are handled as they come.
    client.start(session.receive)
    return Response(status=204)


def _register(client: LighterClient, svc: Services, reading: bool = False) -> bool:
    """Give `client` a hub slot (False, and it is closed with 1013, when the process has none left). `svc` is
    passed in: a subscribe is handled outside the request, with no Flask app context."""
    if svc.hub.full():  # Lighter has no error code for this: a close code only, as /ws after its error frame
        svc.metrics.dropped(STREAM_ROUTE, "full")
        client.close_grace_s = min(client.close_grace_s, REFUSED_GRACE_S)
        if reading:
            client.close(CloseCode.TRY_AGAIN_LATER, "server full; retry_after=1")
        else:  # start reading, so its close answer arrives and the descriptor goes at once
            client.refuse(CloseCode.TRY_AGAIN_LATER, "server full; retry_after=1", flush=False)
        return False
    svc.hub.register(client)
    return True


def _admit_total(client: LighterClient, admission: Admission, svc: Services) -> bool:
    """A token-less connection's first authenticated subscribe, over the process's admission rate: closed with
    1013 and a retry hint, as a handshake over it is."""
    if admission.admit_total():
        return True
    svc.metrics.clients_dropped.labels(reason="busy").inc()
    client.close_grace_s = min(client.close_grace_s, REFUSED_GRACE_S)
    client.close(CloseCode.TRY_AGAIN_LATER, "busy; retry_after=1")
    return False


def _deadline(client: LighterClient, session: Session, timeout_s: float, failed: Callable[[], bool]) -> None:
    """Close a token-less connection that has not authenticated a subscribe within `timeout_s`; it counts as a
    refused token (`failed`), like a token-less /ws handshake."""
    timer = get_hub().loop.timer(timeout_s)

    def expire() -> None:
        timer.close()
        if session.admitted is not None and client.closing is None:
            client.close(CloseCode.POLICY, "authenticate a subscribe first")
            gevent.spawn(failed)  # a Redis round trip: never in the event loop's own callback

    def cancel() -> None:
        timer.stop()
        timer.close()

    timer.start(expire)
    client.when_closed(cancel)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
