"""The `/stream` WebSocket: connections, subscriptions, pushes, keepalive and WS faults."""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import WSMsgType, web

from . import errors, shapes, wsframes
from .auth import check_token

if TYPE_CHECKING:
    from .server import Sim

log = logging.getLogger(__name__)
QUEUE_MAX = 2000  # frames; a client this far behind is dropped rather than slowing everyone down


class Conn:
    """One client connection with a bounded outbound queue drained by its own writer task."""

    def __init__(self, ws: web.WebSocketResponse, transport: Any, readonly: bool, now: float) -> None:
        self.ws = ws
        self.transport = transport
        self.readonly = readonly
        self.session_id = str(uuid.uuid4())
        self.subs: set[str] = set()
        self.queue: asyncio.Queue[tuple[str, Any, float]] = asyncio.Queue(QUEUE_MAX)
        self.last_client = now
        self.last_ping = now

    def put(self, item: tuple[str, Any]) -> None:
        try:
            self.queue.put_nowait((*item, time.monotonic()))
        except asyncio.QueueFull:
            log.warning("dropping slow WS client %s", self.session_id)
            self.abort()

    def abort(self) -> None:
        """Close the TCP connection without a close frame (what a network drop looks like)."""
        if self.transport is not None:
            self.transport.abort()


class Hub:
    """All open connections and the channel index used to fan model changes out."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.conns: set[Conn] = set()
        self.by_channel: dict[str, set[Conn]] = {}

    # ----- fan-out ------------------------------------------------------------------------
    def send(self, conn: Conn, frame: dict, channel: str | None = None) -> None:
        conn.put(("frame", (frame, channel)))

    def broadcast(self, channel: str, frame: dict) -> None:
        """Encode once, queue to each subscriber (drifted connections re-encode in their writer)."""
        subs = self.by_channel.get(channel)
        if subs:
            data = orjson.dumps(frame).decode()
            for conn in list(subs):
                conn.put(("text", (data, frame, channel)))

    def publish(self, changes: Any) -> None:
        """Push the WS updates for one model step."""
        model, ts = self.sim.model, self.sim.now_ms()
        for idx in sorted(changes.accounts):
            if f"account_all/{idx}" in self.by_channel:
                fills = changes.fills.get(idx, [])
                self.broadcast(f"account_all/{idx}", wsframes.account_all(model, idx, "update", fills, ts))
            if f"user_stats/{idx}" in self.by_channel:
                self.broadcast(f"user_stats/{idx}", wsframes.user_stats_frame(model, idx, "update", ts))
            if f"account_all_positions/{idx}" in self.by_channel:
                self.broadcast(f"account_all_positions/{idx}",
                               wsframes.account_all_positions(model, idx, "update", ts))
            if changes.fills.get(idx) and f"account_all_trades/{idx}" in self.by_channel:
                frame = wsframes.account_all_trades(model, idx, "update", changes.fills[idx], ts)
                self.broadcast(f"account_all_trades/{idx}", frame)
            if changes.orders.get(idx) and f"account_all_orders/{idx}" in self.by_channel:
                frame = wsframes.account_all_orders(idx, changes.orders[idx], "update", ts)
                self.broadcast(f"account_all_orders/{idx}", frame)
        for mid, delta in changes.books.items():
            if f"order_book/{mid}" in self.by_channel:
                self.broadcast(f"order_book/{mid}", wsframes.order_book(model, mid, "update", ts, delta))

    # ----- faults -------------------------------------------------------------------------
    def apply_fault(self, fault: Any) -> None:
        """Act on open connections when a drop/shutdown fault is added."""
        for conn in list(self.conns):
            if fault.matches_ws(conn.subs) or fault.ws == "*":
                self._hit(conn, fault)

    def _hit(self, conn: Conn, fault: Any) -> None:
        if fault.kind == "ws_drop":
            conn.put(("abort", None))
        elif fault.kind == "ws_shutdown":
            close_in = int(fault.params.get("close_in_ms", 1000))
            self.send(conn, {"type": "shutdown", "close_in_ms": close_in})
            asyncio.get_running_loop().call_later(close_in / 1000, conn.put, ("close", 1001))

    def _silenced(self, conn: Conn, channel: str | None) -> bool:
        # Channel frames follow their channel; connection-level frames (ping, pong, errors)
        # follow any of the connection's subscriptions.
        scope = {channel} if channel else conn.subs
        return bool(self.sim.faults.ws("ws_silence", scope, self.sim.clock()))

    # ----- keepalive ----------------------------------------------------------------------
    async def housekeeping(self) -> None:
        """Send app-level pings and close connections idle for --ws-idle-s (server pushes don't count)."""
        cfg = self.sim.cfg
        interval = max(0.02, min(0.25, cfg.ws_ping_s / 4, cfg.ws_idle_s / 4))
        while True:
            await asyncio.sleep(interval)
            now = self.sim.clock()
            for conn in list(self.conns):
                if now - conn.last_client >= cfg.ws_idle_s:
                    conn.put(("close", 1000))
                    conn.last_client = float("inf")  # close once
                elif now - conn.last_ping >= cfg.ws_ping_s:
                    conn.last_ping = now
                    conn.put(("frame", ({"type": "ping"}, None)))

    # ----- per-connection tasks -----------------------------------------------------------
    async def writer(self, conn: Conn) -> None:
        """Drain one connection's queue in order; faults decide per frame."""
        while True:
            op, arg, queued_at = await conn.queue.get()
            if op == "abort":
                conn.abort()
                return
            if op == "close":
                await conn.ws.close(code=arg)
                return
            frame, channel = arg if op == "frame" else (arg[1], arg[2])
            if self._silenced(conn, channel):
                continue
            now = self.sim.clock()
            for f in self.sim.faults.ws("latency", {channel} if channel else conn.subs, now):
                # Delay relative to when the frame was queued, so throughput is kept (frames pipeline).
                delay = queued_at + float(f.params.get("ms", 1000)) / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if self.sim.faults.ws("schema_drift", {channel} if channel else conn.subs, now):
                data = orjson.dumps(shapes.drift(orjson.loads(orjson.dumps(frame)))).decode()
            elif op == "text":
                data = arg[0]
            else:
                data = orjson.dumps(frame).decode()
            await conn.ws.send_str(data)

    def subscribe(self, conn: Conn, msg: dict) -> None:
        sim = self.sim
        channel = msg.get("channel")
        parsed = wsframes.parse_channel(channel, sim.model)
        if parsed is None:
            return self.error(conn, errors.WS_INVALID_CHANNEL)
        name, ident = parsed
        if name in wsframes.ACCOUNT_CHANNELS and ident not in sim.model.accounts:
            return self.error(conn, errors.ACCOUNT_NOT_FOUND)
        if name in wsframes.AUTH_CHANNELS:
            token = msg.get("auth")
            if not token:
                return self.error(conn, errors.ws_auth_required(wsframes.frame_channel(channel)))
            err = check_token(token, ident, sim.model.accounts[ident].api_key_index, sim.clock())
            if err:
                return self.error(conn, err)
        if channel in conn.subs:
            return self.error(conn, errors.WS_ALREADY_SUBSCRIBED)
        conn.subs.add(channel)
        self.by_channel.setdefault(channel, set()).add(conn)
        self.send(conn, wsframes.snapshot(sim.model, channel, sim.now_ms()), channel)
        for fault in sim.faults.ws("ws_drop", {channel}, sim.clock()):
            self._hit(conn, fault)
        for fault in sim.faults.ws("ws_shutdown", {channel}, sim.clock()):
            self._hit(conn, fault)

    def unsubscribe(self, conn: Conn, msg: dict) -> None:
        channel = msg.get("channel")
        if channel not in conn.subs:
            return self.error(conn, errors.WS_NOT_SUBSCRIBED)
        self._forget(conn, channel)
        self.send(conn, {"type": "unsubscribed", "channel": wsframes.frame_channel(channel),
                         "timestamp": self.sim.now_ms()})

    def _forget(self, conn: Conn, channel: str) -> None:
        conn.subs.discard(channel)
        subs = self.by_channel.get(channel)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self.by_channel[channel]

    def error(self, conn: Conn, body: dict) -> None:
        self.send(conn, {"type": "error", "error": body, "timestamp": self.sim.now_ms()})

    def on_text(self, conn: Conn, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self.error(conn, errors.WS_INVALID_JSON)
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind == "subscribe":
            self.subscribe(conn, msg)
        elif kind == "unsubscribe":
            self.unsubscribe(conn, msg)
        elif kind == "ping":
            self.send(conn, {"type": "pong"})
        elif kind != "pong":
            self.error(conn, errors.WS_INVALID_TYPE)

    def subscription_counts(self) -> dict[str, int]:
        return {ch: len(conns) for ch, conns in sorted(self.by_channel.items())}

    async def close_all(self) -> None:
        for conn in list(self.conns):
            conn.abort()


async def stream_handler(request: web.Request) -> web.StreamResponse:
    """Upgrade (or refuse, for geo-block / refuse_upgrade), then read client frames until close."""
    sim: Sim = request.app["sim"]
    readonly = request.query.get("readonly", "").lower() == "true"
    now = sim.clock()
    refuse = [f for f in sim.faults.active(now) if f.kind == "refuse_upgrade"]
    if (sim.geo_block and not readonly) or any(f.params.get("readonly") or not readonly for f in refuse):
        sim.counters.refused_upgrades += 1
        return web.Response(status=400, body=orjson.dumps(errors.RESTRICTED), content_type="application/json")
    ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
    transport = request.transport
    await ws.prepare(request)
    hub = sim.hub
    conn = Conn(ws, transport, readonly, sim.clock())
    hub.conns.add(conn)
    sim.counters.ws_total += 1
    writer = asyncio.create_task(hub.writer(conn))
    hub.send(conn, {"type": "connected", "session_id": conn.session_id})
    try:
        async for msg in ws:
            conn.last_client = sim.clock()
            if msg.type == WSMsgType.TEXT:
                hub.on_text(conn, msg.data)
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break
    finally:
        hub.conns.discard(conn)
        for channel in list(conn.subs):
            hub._forget(conn, channel)
        writer.cancel()
    return ws
