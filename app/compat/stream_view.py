"""The `/stream` route: handshake, token, and the handling of Lighter client frames (subscribe, ping...)."""
from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, abort, request
from redis.exceptions import RedisError

from app.compat import auth, errors, frames
from app.compat.errors import LighterError
from app.compat.stream import LighterClient
from app.metrics import STREAM_ROUTE
from app.services import services
from app.ws import transport
from app.ws.codes import CloseCode
from core.store import Store, StoreError

log = logging.getLogger(__name__)
bp = Blueprint("lighter_stream", __name__)
MAX_MESSAGE = 4096            # subscribe frames are small; bigger ones are closed with 1009
MAX_BAD_FRAMES = 20           # error frames before we stop talking to a client that keeps sending garbage
MAX_SUBSCRIPTIONS = 100       # per connection, Lighter's documented limit (error 23001)
MESSAGES_PER_MINUTE = 200     # client frames per connection, Lighter's documented limit (error 30009)


class Session:
    """One /stream connection's protocol state (used by its client's handling greenlet only)."""

    def __init__(self, client: LighterClient, store: Store, token: str | None, authorized: bool) -> None:
        self.client = client
        self.store = store
        self.token = token
        self.authorized = authorized  # our token came with the handshake: no per-subscribe `auth` needed
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
                return self.error(errors.AUTH_INVALID)
        if (name, account) in self.client.channels:
            return self.error(errors.ALREADY_SUBSCRIBED)
        if len(self.client.channels) >= MAX_SUBSCRIPTIONS:
            return self.error(errors.TOO_MANY_SUBSCRIPTIONS)
        try:
            if account not in self.store.tracked():
                return self.error(errors.ACCOUNT_NOT_FOUND)
            self.client.watch(name, account)
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
    hub, web = svc.hub, svc.settings.web
    secret = svc.settings.api_token
    token = secret.reveal() if secret is not None else None
    client = LighterClient(conn, web.ws_queue_frames, svc.metrics, web.ws_close_grace_s, svc.stream_encoder)
    if hub.full():  # Lighter has no error code for this: a close code only, as /ws after its error frame
        svc.metrics.dropped(STREAM_ROUTE, "full")
        client.refuse(CloseCode.TRY_AGAIN_LATER, "server full", flush=False)
        return Response(status=204)
    authorized, refused = _handshake_token(token)
    # gevent-websocket has answered 101 before the view runs: a refusal is an error frame and a close.
    client.push(frames.error(errors.AUTH_INVALID) if refused else frames.connected(str(uuid.uuid4())))
    hub.register(client)
    client.when_closed(client.forget)  # release its subscriptions from the shared encoder
    if refused:
        client.refuse(CloseCode.POLICY, "invalid auth")
    else:
        svc.watcher.ensure_started()
        # From here the connection lives on without this greenlet: frames are handled as they come.
        client.start(Session(client, svc.store, token, authorized).receive)
    return Response(status=204)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
