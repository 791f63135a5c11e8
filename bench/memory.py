"""Memory: server RSS per idle /ws client, ours and the websockets reference, at 1,000 and 10,000 clients.

One server per kind: a few warm-up clients first (so lazy imports and the hub are already paid for), then the
baseline RSS, then clients added up to each size; per-client = (RSS − baseline) ÷ clients. "Idle" means no
account changes (ours still pushes its 1 s status frame when it changes).
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from bench import procs
from bench.clients import ClientPool
from bench.fanout import ACCOUNTS, WS_PATH

WARM_CLIENTS = 20


@dataclass
class MemoryConfig:
    sizes: tuple[int, ...] = (1000, 10000)
    settle_s: float = 3.0
    store: str = "redis"
    servers: tuple[str, ...] = ("reference", "ours")


def _settled_rss(server: procs.Server, settle_s: float) -> int:
    """RSS after `settle_s`, taken as the median of a few samples (gevent frees lazily)."""
    time.sleep(settle_s)
    samples = []
    for _ in range(5):
        samples.append(server.rss_bytes())
        time.sleep(0.2)
    return sorted(samples)[len(samples) // 2]


def _start(kind: str, cfg: MemoryConfig, tmp: str) -> tuple[list, procs.Server, str]:
    if kind == "reference":
        ref = procs.reference(0, 2048, len(ACCOUNTS))
        return [ref], ref, f"ws://127.0.0.1:{ref.match.group(1)}/"
    env, redis = procs.store_env(cfg.store, tmp)
    env = procs.web_env(env, ACCOUNTS)
    subprocess.run([sys.executable, "-m", "bench.driver", "--seconds", "0.5", "--rate", "20", "--first-account",
                    str(ACCOUNTS[0]), "--accounts", str(len(ACCOUNTS))], cwd=procs.ROOT, check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    web, port = procs.gunicorn("wsgi:app", env)
    return [web, *([redis] if redis else [])], web, f"ws://127.0.0.1:{port}{WS_PATH}"


def measure(kind: str, cfg: MemoryConfig, log=print) -> dict[str, Any]:
    points = []
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        stops, server, url = _start(kind, cfg, tmp)
        pools: list[ClientPool] = []
        try:
            pools.append(ClientPool(url, WARM_CLIENTS, 1, wait_sync=kind == "ours"))
            pools[-1].wait_ready()
            baseline = _settled_rss(server, cfg.settle_s)
            held = 0
            for size in cfg.sizes:
                add = size - held
                pools.append(ClientPool(url, add, max(2, math.ceil(add / 2500)), wait_sync=kind == "ours"))
                ready = pools[-1].wait_ready()
                held += ready["connected"]
                rss = _settled_rss(server, cfg.settle_s)
                open_now = sum(p.open_count() for p in pools[1:])
                points.append({"clients": size, "connected": held, "open": open_now,
                               "failed": ready["failed"], "first_error": ready["first_error"],
                               "rss_mb": round(rss / 2**20, 1),
                               "kb_per_client": round((rss - baseline) / 1024 / max(1, held), 1)})
                log(f"memory: {kind} {held} idle clients: {points[-1]['kb_per_client']} KB/client")
        finally:
            for pool in pools:
                pool.close()
            for item in stops:
                item.stop()
    return {"server": kind, "baseline_rss_mb": round(baseline / 2**20, 1), "points": points}


def run(cfg: MemoryConfig, log=print) -> dict[str, Any]:
    from bench.wsclient import raise_fd_limit

    limit = raise_fd_limit(max(cfg.sizes) * 2 + 4096)
    results = [measure(kind, cfg, log) for kind in cfg.servers]
    return {"config": {**cfg.__dict__, "fd_limit": limit}, "results": results}
