"""Upstream economy: REST requests/s the worker sends the simulator, and 429s, with 0 and with 1,000 /ws clients.

Counted by the simulator itself (`/_sim/counters`) over equal windows of the live (running) market. The web
never calls upstream, so the two rates must match (within ±2 requests per window, the phase of the worker's
poll schedule against the window edges) and there must be no 429 at all.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from bench.clients import ClientPool
from bench.stack import Stack, running

TOLERANCE = 2  # requests per window: a poll landing just before or after a window edge


@dataclass
class UpstreamConfig:
    window_s: float = 30.0
    settle_s: float = 5.0
    clients: int = 1000
    tier: str = "premium"
    store: str = "redis"


def _window(stack: Stack, seconds: float) -> dict[str, Any]:
    (r0, l0), t0 = stack.upstream_counts(), time.monotonic()
    time.sleep(seconds)
    (r1, l1), t1 = stack.upstream_counts(), time.monotonic()
    return {"requests": r1 - r0, "rate_limited": l1 - l0, "seconds": round(t1 - t0, 2),
            "requests_per_s": round((r1 - r0) / (t1 - t0), 3)}


def run(cfg: UpstreamConfig, log: Callable = print) -> dict[str, Any]:
    with running(n_accounts=3, tier=cfg.tier, store=cfg.store) as stack:
        time.sleep(cfg.settle_s)  # past the worker's start-up fetches, into its steady schedule
        idle = _window(stack, cfg.window_s)
        log(f"upstream: 0 clients: {idle}")
        with ClientPool(stack.ws_url, cfg.clients, 2, wait_sync=True) as pool:
            ready = pool.wait_ready()
            loaded = _window(stack, cfg.window_s)
            open_clients = pool.open_count()
        log(f"upstream: {ready['connected']} clients: {loaded}")
        total_429 = stack.upstream_counts()[1]
    diff = loaded["requests"] - idle["requests"]
    return {"config": cfg.__dict__, "idle": {"clients": 0, **idle},
            "loaded": {"clients": ready["connected"], "open_at_end": open_clients, **loaded},
            "difference_requests": diff, "equal_within_tolerance": abs(diff) <= TOLERANCE,
            "tolerance_requests": TOLERANCE, "rate_limited_total_since_start": total_429}
