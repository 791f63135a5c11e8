"""/ws: the WebSocket protocol (docs/websocket.md) on top of the hub and the transport adapter."""
from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from flask import Blueprint, Flask, Response, abort, request

from app import auth
from app.guard import Guard, guard
from app.metrics import WS_ROUTE
from app.services import Services, services
from app.ws import messages, transport
from app.ws.clients import Client
from app.ws.codes import CloseCode
from app.ws.hub import Hub
from core.store import Store

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)
bp = Blueprint("ws", __name__)
PATH = "/ws"
MAX_MESSAGE = 4096        # client frames are small commands; anything bigger is closed with 1009
MAX_BAD_COMMANDS = 20     # error frames before we give up on a client that keeps sending garbage
REFUSED_GRACE_S = 1.0     # a refused client answers our close at once; one that does not is cut after this
# `resume` and `subscribe` commands per connection and rolling minute (200, as Lighter allows messages on /stream).
# Each costs a sync (every account's snapshot, read and encoded): unpaced, three readers doing it in a loop held a
# new client's handshake for 10 s. Other commands are cheap, and bounded by the client's inbox (MAX_INBOX).
SYNCS_PER_MINUTE = 200


def _since(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise ValueError("since must be a non-negative integer")
    return int(raw)


def _updates(raw: str | None, protocol: int) -> str:
    """Version 2 sends patches unless asked for full updates (as Lighter sends deltas); version 1 full ones."""
    if raw in (None, ""):
        return "patch" if protocol == messages.PROTOCOL else "full"
    if raw in ("full", "patch"):
        return raw
    raise ValueError("updates must be 'full' or 'patch'")


def _protocol(raw: str | None) -> int:
    if raw in (None, ""):
        return messages.PROTOCOL
    if raw in (str(messages.LEGACY_PROTOCOL), str(messages.PROTOCOL)):
        return int(raw)
    raise ValueError(f"v must be {messages.LEGACY_PROTOCOL} or {messages.PROTOCOL}")


def _confirm(raw: str | None, protocol: int) -> str:
    if raw in (None, ""):
        return "small" if protocol == messages.PROTOCOL else "full"
    if raw in messages.CONFIRM_MODES:
        return raw
    raise ValueError("confirm must be 'small' or 'full'")


def _flag(raw: str | None, name: str) -> bool:
    if raw in (None, "", "0", "1"):
        return raw == "1"
    raise ValueError(f"{name} must be 0 or 1")


def _query_accounts(raw: str | None) -> set[int] | None:
    if not raw:
        return None
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) > 1000 or not all(p.isdigit() and len(p) <= 19 for p in parts):
        raise ValueError("accounts must be a comma-separated list of account indexes")
    return {int(p) for p in parts}


@bp.route(PATH, websocket=True)
def websocket() -> Response:
    """Flask's way in (an app without the `Entry` layer, as tests build): the same `serve`."""
    if not serve(request.environ, services(), guard()):  # werkzeug routes only upgrade requests here
        abort(400, "WebSocket upgrade required")
    return Response(status=204)


class Entry:
    """WSGI layer answering /ws upgrades before Flask: a connection needs nothing of Flask's request machinery
    (routing, hooks, the limiter's context), which cost as much CPU as the rest of a handshake together. Every
    other request, /stream included, goes to `app` untouched."""

    def __init__(self, app: WSGIApplication, svc: Services, checks: Guard) -> None:
        self.app, self.svc, self.checks = app, svc, checks

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == PATH and environ.get("wsgi.websocket") is not None:
            try:
                serve(environ, self.svc, self.checks)
            except Exception:  # a bug, as Flask would log it: one line with the traceback, never the request's query
                log.exception("ws: serving a new connection failed")
            return []  # gevent-websocket ignores the answer: the 101 went out before any WSGI code ran
        return self.app(environ, start_response)


def serve(environ: WSGIEnvironment, svc: Services, checks: Guard) -> bool:
    """Serve one upgraded /ws connection (False: `environ` is not an upgrade). Returns once the client is synced:
    from then on the connection lives without this greenlet."""
    conn = transport.accept(environ, MAX_MESSAGE)
    if conn is None:
        return False
    hub, web = svc.hub, svc.settings.web
    client = Client(conn, web.ws_queue_frames, svc.metrics, web.ws_close_grace_s, backlog_bytes=web.ws_backlog_bytes)
    args = _args(environ.get("QUERY_STRING", ""))
    # gevent-websocket has already answered 101 when we run: refusals are error frames and close codes.
    # Everything before `register` costs no slot: an unauthenticated or paced-out client holds nothing here.
    token = auth.bearer(environ.get("HTTP_AUTHORIZATION", "")) or args.get("token") or None
    refusal = admit(conn.remote, auth.token_matches(svc.settings, token), checks)
    if refusal is not None:
        svc.metrics.dropped(WS_ROUTE, refusal[1])  # unauthorized, too_many_failures, busy
        _refuse(client, *refusal)
        return True
    if hub.full():
        svc.metrics.dropped(WS_ROUTE, "full")
        _refuse(client, CloseCode.TRY_AGAIN_LATER, "server_full", "too many open WebSockets here; try again later", 1)
        return True
    try:
        since = _since(args.get("since"))
        client.accounts = _query_accounts(args.get("accounts"))
        protocol = _protocol(args.get("v"))
        updates = _updates(args.get("updates"), protocol)
        confirm = _confirm(args.get("confirm"), protocol)
        wants_portfolio = _flag(args.get("portfolio"), "portfolio")
    except ValueError as exc:
        _refuse(client, CloseCode.POLICY, "bad_query", str(exc))
        return True
    hub.register(client)
    svc.watcher.ensure_started()  # before the sync reads the store: changes after it come from the feed
    try:
        mirror = svc.watcher.serving()  # the process's own copy: no store round trip per new client
        tracked = mirror.tracked() if mirror is not None else svc.store.tracked()
        subscribed = sorted(client.accounts) if client.accounts is not None else None
        if updates == "patch":
            hub.send_patches(client)
        client.confirm_full = confirm == "full"
        hello = transport.frame_text(messages.hello(tracked, hub.heartbeat_s, MAX_MESSAGE, subscribed, updates,
                                                    protocol, confirm))
        # hello, the snapshots and the status in one gathered write
        hub.sync(client, tracked, since, mirror, lead=hello, tail=hub.status_frame())
        if wants_portfolio and hub.portfolio is not None:
            hub.portfolio.add(client)
    except Exception:  # the store went away mid-sync: the client reconnects (with `since`) like after any drop
        log.warning("ws %s: initial sync failed", conn.remote, exc_info=True)
        client.refuse(CloseCode.INTERNAL_ERROR, "store unavailable", flush=False)
        return True
    # From here the connection lives on without this greenlet: messages are handled as they come.
    client.start(_Commands(hub, svc.store, client))
    return True


def _args(query: str) -> dict[str, str]:
    """The query's parameters, the first value of each (as Flask's `request.args.get`). Never raises: the request
    line, and so the query, is bounded by pywsgi (8 KB), and bad escapes decode as replacement characters."""
    args: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        args.setdefault(key, value)
    return args


def admit(address: str, authorized: bool, checks: Guard,
          pending: bool = False) -> tuple[CloseCode, str, str, int | None] | None:
    """Why a new WebSocket from `address` is refused before it is registered (close code, error code, text, retry
    hint in seconds), or None: a spent failure budget, a missing or wrong token (which spends it), or a handshake
    over the admission rate. Shared by /ws and /stream (app/compat/stream_view.py). `pending`: no token shown yet
    (a /stream that authenticates in its subscribes): paced per address only, until it does."""
    wait = checks.failures.blocked(address)
    if wait is not None:
        return CloseCode.POLICY, "too_many_failures", f"too many refused tokens; retry in {wait} s", wait
    if not authorized:
        if not checks.failures.fail(address):
            wait = checks.failures.blocked(address) or 1
            return CloseCode.POLICY, "too_many_failures", f"too many refused tokens; retry in {wait} s", wait
        return CloseCode.UNAUTHORIZED, "unauthorized", "missing or wrong token", None
    if not checks.admission.admit(address, total=not pending):
        return CloseCode.TRY_AGAIN_LATER, "busy", "too many connections being opened; retry in 1 s", 1
    return None


def _refuse(client: Client, code: CloseCode, error: str, text: str, retry_after_s: int | None = None) -> None:
    """An error frame (with the retry hint, if any) and the close, with a short grace: a refused client was never
    registered, and its descriptor is released as soon as it answers the close, or after REFUSED_GRACE_S."""
    client.send(transport.frame_text(messages.error(error, text, retry_after_s)))
    client.close_grace_s = min(client.close_grace_s, REFUSED_GRACE_S)
    client.refuse(code, f"{error}; retry_after={retry_after_s}" if retry_after_s is not None else error)


class _Commands:
    """Handles one client's commands, counting the bad ones."""

    __slots__ = ("hub", "store", "client", "errors", "recent")

    def __init__(self, hub: Hub, store: Store, client: Client) -> None:
        self.hub, self.store, self.client, self.errors = hub, store, client, 0
        self.recent: deque[float] = deque(maxlen=SYNCS_PER_MINUTE)

    def sync_allowed(self) -> bool:
        """Count one sync-costing command; False (the client told, and closed) when it is one too many."""
        now = time.monotonic()
        if len(self.recent) == SYNCS_PER_MINUTE and now - self.recent[0] < 60:
            self.client.send(transport.frame_text(messages.error(
                "too_many_messages", f"more than {SYNCS_PER_MINUTE} resume or subscribe commands in a minute")))
            self.client.close(CloseCode.POLICY, "too many messages")
            return False
        self.recent.append(now)
        return True

    def __call__(self, message: str | bytes) -> None:
        if not _handle(self.hub, self.store, self.client, message, self.sync_allowed):
            self.errors += 1
            if self.errors >= MAX_BAD_COMMANDS:
                self.client.close(CloseCode.POLICY, "too many bad messages")


def _handle(hub: Hub, store: Store, client: Client, message: str | bytes,
            sync_allowed: Callable[[], bool] = lambda: True) -> bool:
    """Apply one client command. False (after sending an error frame) when it was not a valid command.
    `sync_allowed` paces the commands that cost a sync (False: the client has been closed)."""
    def error(code: str, text: str) -> bool:
        client.send(transport.frame_text(messages.error(code, text)))
        return False

    if isinstance(message, bytes):
        return error("bad_message", "send JSON text frames")
    try:
        command: Any = orjson.loads(message)
    except orjson.JSONDecodeError:
        return error("bad_json", "message is not valid JSON")
    if not isinstance(command, dict):
        return error("bad_message", "message must be a JSON object with an 'op'")
    op = command.get("op")
    if op in ("subscribe", "resume") and not sync_allowed():
        return True  # told and closed: not a bad command
    if op in ("subscribe", "unsubscribe"):
        return _subscription(hub, store, client, op, command.get("accounts"), error)
    if op == "resume":
        since = command.get("since")
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            return error("bad_since", "since must be a non-negative integer")
        hub.sync(client, None, since)
        return True
    if op == "ping":
        client.send(transport.frame_text(messages.encode({"type": "pong", "id": command.get("id")})))
        return True
    return error("unknown_op", "op must be one of subscribe, unsubscribe, resume, ping")


def _subscription(hub: Hub, store: Store, client: Client, op: str, raw: Any,
                  error: Callable[[str, str], bool]) -> bool:
    accounts = messages.parse_accounts(raw)
    if accounts is None:
        return error("bad_accounts", "accounts must be a list of at most 1000 account indexes")
    tracked = store.tracked()
    current = set(tracked) if client.accounts is None else set(client.accounts)
    if op == "unsubscribe":
        client.accounts = current - set(accounts)
        client.send(transport.frame_text(messages.subscribed(sorted(client.accounts))))
        return True
    unknown = [a for a in accounts if a not in tracked]
    added = [a for a in accounts if a not in current and a in tracked]
    client.accounts = current | set(added)
    client.send(transport.frame_text(messages.subscribed(sorted(client.accounts))))
    hub.sync(client, added, None)
    if unknown:
        return error("unknown_accounts", f"not tracked: {unknown[:20]}")
    return True


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
