"""Process wiring: shared simulator state, the aiohttp app, the market ticker and the serve loop."""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable

from aiohttp import web

from .config import SimConfig
from .faults import FaultRegistry
from .model import Changes, Model
from .ratelimit import RateLimiter
from .trades import TradeLog
from .ws import Hub

log = logging.getLogger(__name__)


class Counters:
    """Per-egress request counts and 429s, plus WS totals (open connections come from the hub)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.rate_limited: dict[str, int] = defaultdict(int)
        self.ws_total = 0
        self.refused_upgrades = 0


class Sim:
    """Everything one simulator process knows; handlers reach it as request.app['sim']."""

    def __init__(self, cfg: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.model = Model(cfg.seed, cfg.accounts, self.now_ms())
        self.limiter = RateLimiter(cfg.tier, cfg.rate_window_s)
        self.faults = FaultRegistry()
        self.counters = Counters()
        self.geo_block = cfg.geo_block
        self.running = True
        self.hub = Hub(self)
        self.trade_log = TradeLog()  # what GET /api/v1/trades pages through

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def apply(self, changes: Changes) -> None:
        """Every model mutation goes through here so WS pushes follow at once."""
        self.trade_log.record(changes)
        self.hub.publish(changes)

    async def ticker(self) -> None:
        """Advance the market every --tick-ms on a fixed schedule (no drift from work time)."""
        loop = asyncio.get_running_loop()
        period = self.cfg.tick_ms / 1000
        next_at = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at + period, loop.time())
            if self.running:
                self.apply(self.model.tick(self.now_ms()))

    def counters_json(self) -> dict:
        c = self.counters
        return {
            "requests": {e: dict(paths) for e, paths in c.requests.items()},
            "weight_used": self.limiter.weight_used(self.clock()),
            "rate_limited": dict(c.rate_limited),
            "ws": {"connections": len(self.hub.conns), "connections_total": c.ws_total,
                   "subscriptions": self.hub.subscription_counts(), "refused_upgrades": c.refused_upgrades},
        }


def build_app(cfg: SimConfig) -> web.Application:
    """The one place the aiohttp app is assembled."""
    from . import control_api, http_api, ws

    sim = Sim(cfg)
    app = web.Application(middlewares=http_api.middlewares())
    app["sim"] = sim
    app.on_response_prepare.append(_mark_simulator)
    app.router.add_get("/stream", ws.stream_handler)
    control_api.add_routes(app)
    http_api.add_routes(app)

    async def background(app: web.Application):
        tasks = [asyncio.create_task(sim.ticker()), asyncio.create_task(sim.hub.housekeeping())]
        yield
        for t in tasks:
            t.cancel()
        await sim.hub.close_all()

    app.cleanup_ctx.append(background)
    return app


async def _mark_simulator(request: web.Request, response: web.StreamResponse) -> None:
    # The worker shows "upstream is the simulator" on its dashboard when it sees this header.
    response.headers["X-Lighter-Simulator"] = "1"


async def serve(cfg: SimConfig) -> None:
    """Listen, announce the address on stdout, and run until SIGTERM/SIGINT."""
    app = build_app(cfg)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # the real port when --port 0
    sys.stdout.write(f"simulator listening on http://{cfg.host}:{port} (ws://{cfg.host}:{port}/stream)\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app["sim"].hub.close_all()
    await runner.cleanup()
