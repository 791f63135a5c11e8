"""Upstream WebSocket, one per egress: subscribe, keep alive, watchdog, reconnect, readonly/REST-only ladder."""
from __future__ import annotations

import logging
from typing import Any

import gevent
import gevent.event
import orjson
import websocket

from core.backoff import Retry
from core.logs import fields
from core.snapshot import Row, now_ms
from worker.ingest.dispatch import flag_channel
from worker.ingest.parse import Frame, ParseError, parse_frame
from worker.protocol import READONLY_QUERY, SIMULATOR_HEADER, Channel, Control
from worker.runtime import Runtime
from worker.states import Mode, WsState
from worker.upstream.egress import Egress
from worker.upstream.tokens import TokenError

log = logging.getLogger(__name__)


class Reconnect(Exception):
    """End this connection and open a new one (shutdown frame, silence, protocol surprise)."""


class UpstreamSocket:
    """One egress's upstream WebSocket and its state ladder (connecting, connected, backoff, readonly, rest-only)."""

    def __init__(self, rt: Runtime, egress: Egress) -> None:
        self.rt = rt
        self.egress = egress
        tuning = rt.tuning
        self.retry = Retry(rt.clock, tuning.backoff_initial_s, cap=tuning.backoff_max_s,
                           healthy_after=tuning.healthy_after_s)
        self.readonly = False
        self.readonly_since = 0.0
        self.live: set[tuple[Channel, int]] = set()  # subscriptions that delivered a good frame
        self.ping_s = tuning.ping_interval(rt.settings.cache_ttl)

    def _set_state(self, state: WsState, mode: Mode | None = None) -> None:
        ws = self.egress.ws
        if mode is not None:
            ws.mode = mode
        if state != ws.state:
            ws.state, ws.since = state, now_ms()
            self.egress.replan(self.rt.settings)

    def _options(self) -> dict[str, Any]:
        proxy = self.egress.proxy
        if proxy is None:
            return {"http_no_proxy": ["*"]}  # direct means direct, whatever http_proxy the host sets
        options: dict[str, Any] = {"http_proxy_host": proxy.host, "http_proxy_port": proxy.port, "proxy_type": "http"}
        if proxy.username:
            options["http_proxy_auth"] = (proxy.username, proxy.password.reveal() if proxy.password else "")
        return options

    def run(self, stop: gevent.event.Event) -> None:
        while not stop.is_set():
            self._set_state(WsState.CONNECTING)
            delay = self._attempt(stop)
            if stop.is_set():
                break
            if self.egress.ws.state != WsState.REST_ONLY:
                self._set_state(WsState.BACKOFF)
            stop.wait(delay)

    def _attempt(self, stop: gevent.event.Event) -> float:
        """One connection's life; returns how long to wait before the next."""
        if self.readonly and self.rt.clock() - self.readonly_since >= self.rt.tuning.ws_retry_s:
            self.readonly = False  # a geo-block can lift: re-probe the full socket now and then
        url = self.rt.settings.lighter_ws_url + (READONLY_QUERY if self.readonly else "")
        try:
            conn = websocket.create_connection(url, timeout=self.rt.tuning.ws_connect_timeout_s,
                                               skip_utf8_validation=True, enable_multithread=True,
                                               **self._options())
        except websocket.WebSocketBadStatusException as exc:
            return self._refused(exc.status_code)
        except (OSError, websocket.WebSocketException) as exc:
            if self.retry.failures == 0:  # the first failure of a streak; status counts the rest
                log.warning("upstream ws %s: connect failed (%s); retrying with backoff", self.egress.id, exc,
                            extra=fields(event="upstream_ws_connect_failed", egress=self.egress.id))
            self.rt.record_error(f"ws:{self.egress.id}", f"connect failed: {type(exc).__name__}: {exc}")
            return self.retry.next_delay()
        if (conn.getheaders() or {}).get(SIMULATOR_HEADER.lower()) == "1":  # websocket-client lowercases names
            self.rt.simulator = True
        try:
            self._serve(conn, stop)
        except (OSError, websocket.WebSocketException, Reconnect, ParseError) as exc:
            if not stop.is_set():
                self.rt.record_error(f"ws:{self.egress.id}", f"connection ended: {type(exc).__name__}: {exc}")
                log.info("upstream ws %s ended (%s); reconnecting", self.egress.id, exc,
                         extra=fields(event="upstream_ws_ended", egress=self.egress.id))
        finally:
            self.live.clear()
            _close(conn)
        self.egress.ws.reconnects += 1
        return self.retry.next_delay()

    def _refused(self, status: int) -> float:
        """HTTP 400 at upgrade is Lighter's geo-block: try `?readonly=true`, then fall back to REST only."""
        self.rt.record_error(f"ws:{self.egress.id}", f"upgrade refused with HTTP {status}"
                             + (f" on {READONLY_QUERY}" if self.readonly else ""))
        if status != 400:
            return self.retry.next_delay()
        if not self.readonly:
            self.readonly, self.readonly_since = True, self.rt.clock()
            return 0.0
        self.readonly = False  # next probe starts from the plain URL again
        self._set_state(WsState.REST_ONLY, Mode.REST_ONLY)
        log.warning("upstream ws %s refused twice (HTTP 400); running REST-only, retrying in %.0fs",
                    self.egress.id, self.rt.tuning.ws_retry_s, extra=fields(event="upstream_rest_only",
                                                                            egress=self.egress.id))
        return self.rt.tuning.ws_retry_s

    def _serve(self, conn: websocket.WebSocket, stop: gevent.event.Event) -> None:
        frame = parse_frame(conn.recv())
        if frame.kind != Control.CONNECTED:
            raise Reconnect(f"expected '{Control.CONNECTED}' first, got {frame.kind!r}")
        self._subscribe(conn)
        if self.readonly:
            self._set_state(WsState.READONLY, Mode.WS_READONLY)
        else:
            self._set_state(WsState.CONNECTED, Mode.WS)
        log.info("upstream ws %s connected%s; subscribed %d account(s)", self.egress.id,
                 " (readonly)" if self.readonly else "", len(self.egress.accounts),
                 extra=fields(event="upstream_ws_connected", egress=self.egress.id))
        self.retry.up()
        self.egress.ws.last_frame_at = now_ms()
        conn.settimeout(self.rt.tuning.ws_silence_s)  # recv timing out *is* the silence watchdog
        keeper = gevent.spawn(self._keepalive, conn, stop)
        try:
            while not stop.is_set():
                raw = conn.recv()
                if not raw:
                    raise Reconnect("closed by upstream")
                at = self.egress.ws.last_frame_at = now_ms()
                self._handle(conn, parse_frame(raw), at)
        except websocket.WebSocketTimeoutException:
            raise Reconnect(f"silent for {self.rt.tuning.ws_silence_s:.0f}s (watchdog)") from None
        finally:
            keeper.kill(block=False)

    def _subscribe(self, conn: websocket.WebSocket) -> None:
        for account in self.egress.accounts:
            index = account.account_index
            _send(conn, {"type": Control.SUBSCRIBE, "channel": Channel.ACCOUNT_ALL.subscription(index)})
            _send(conn, {"type": Control.SUBSCRIBE, "channel": Channel.USER_STATS.subscription(index)})
            token = None
            if not account.public_only:
                try:
                    token = self.rt.tokens.get(account)
                except TokenError as exc:
                    self.rt.record_error(f"ws:{self.egress.id}", str(exc))
            # account_all_trades is public in Lighter's asyncapi.json but private in older docs: send the token
            # when we have one (a token on a public channel is harmless, docs/lighter-protocol.md).
            trades: dict[str, Any] = {"type": Control.SUBSCRIBE,
                                      "channel": Channel.ACCOUNT_ALL_TRADES.subscription(index)}
            if token is not None:
                trades["auth"] = token
            _send(conn, trades)
            if token is not None:
                _send(conn, {"type": Control.SUBSCRIBE, "channel": Channel.ACCOUNT_ALL_ORDERS.subscription(index),
                             "auth": token})

    def _keepalive(self, conn: websocket.WebSocket, stop: gevent.event.Event) -> None:
        """Our pings keep us inside the 2-minute client-idle rule, and their pongs prove liveness."""
        while not stop.wait(self.ping_s):
            try:
                _send(conn, {"type": Control.PING})
            except (OSError, websocket.WebSocketException):
                return  # the reader sees the broken socket and reconnects

    def _handle(self, conn: websocket.WebSocket, frame: Frame, at: int) -> None:
        """`at`: when this frame arrived."""
        if frame.kind in (Control.PING, Control.PONG):
            if frame.kind == Control.PING:
                _send(conn, {"type": Control.PONG})
            if self.live:  # every update sent before this frame has been merged: live sections are current
                self.rt.confirm_live(self.live, at)
        elif frame.kind == Control.SHUTDOWN:
            raise Reconnect(f"upstream shutdown (close_in_ms={frame.payload.get('close_in_ms')})")
        elif frame.kind == Control.ERROR:
            self._error(frame.payload)
        elif frame.channel is not None and frame.account is not None:
            key = (frame.channel, frame.account)
            if frame.error is not None:
                self._bad_frame(key, frame.error)
                return
            self.live.add(key)
            self.rt.apply_frame(frame)

    def _bad_frame(self, key: tuple[Channel, int], message: str) -> None:
        """Flag the sections and stop vouching for them until a good frame arrives (REST reconciles)."""
        self.live.discard(key)
        state = self.rt.states.get(key[1])
        if state is None:
            return
        flag_channel(state, key[0], message)
        self.rt.record_error(f"ws:{key[0]}:{key[1]}", message)
        self.rt.sink.notify()

    def _error(self, payload: Row) -> None:
        message = f"upstream error {payload.get('code')}: {payload.get('message')}"
        self.rt.record_error(f"ws:{self.egress.id}", message)
        text = str(payload.get("message", ""))
        for name, index in list(self.live):
            if name.echoed(index) in text:
                self.live.discard((name, index))
        if "auth" in text:
            for account in self.egress.accounts:
                if f":{account.account_index}" in text:
                    self.rt.tokens.invalidate(account.account_index)


def _send(conn: websocket.WebSocket, message: dict[str, Any]) -> None:
    conn.send(orjson.dumps(message).decode())


def _close(conn: websocket.WebSocket) -> None:
    try:
        conn.close(timeout=0.5)
    except (OSError, websocket.WebSocketException):
        conn.shutdown()
