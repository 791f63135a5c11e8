"""Takeover: how long /ws clients wait for fresh data when the active worker goes, a standby always waiting.

Real processes (simulator, gunicorn, two or three `python worker.py`) on one store. Timed from the signal to the
first /ws message written by the next writer (a higher `epoch`) with data confirmed upstream after the signal
(tests/drills/takeover.py): kill -9 over `trials` kills, SIGTERM handover over `handovers`, and (Redis) the time
from FLUSHALL to the worker's rewrite and to fresh data on /ws.
"""
from __future__ import annotations

import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.drills.clients import WsWatcher, now_ms
from tests.drills.helpers import Stack, live_stack
from tests.drills.takeover import figures, no_seq_names_two_bodies, start_standby, take_over
from tests.fixtures.redis import RedisServer


@dataclass
class TakeoverConfig:
    trials: int = 10
    handovers: int = 5
    flushes: int = 5
    store: str = "redis"


def _rounds(stack: Stack, watcher: WsWatcher, how: signal.Signals, count: int, log: Callable[[str], None]) -> list:
    samples = []
    active = stack.worker
    for n in range(count):
        standby = start_standby(stack)
        took, _ = take_over(stack, watcher, active, how, deadline_s=10)
        samples.append(took)
        active = stack.worker = standby
        stack.killed.discard("worker")
        log(f"takeover: {how.name} {n + 1}/{count}: {took:.2f}s")
    return samples


def _flushes(stack: Stack, watcher: WsWatcher, count: int, log: Callable[[str], None]) -> dict[str, Any]:
    store = stack.worker.store()
    rewrite, fresh = [], []
    for n in range(count):
        head = store.head()
        flushed_ms, flushed = now_ms(), time.monotonic()
        store._redis.flushall()
        stack.wait_until(lambda: store.tracked() == stack.accounts and store.head() > head, 10, "rewrite",
                         interval=0.005)
        rewrite.append(time.monotonic() - flushed)
        watcher.wait_for(lambda w: any((m["account"].get("as_of") or 0) >= flushed_ms for m in w.since(flushed_ms)),
                         10, "fresh /ws data after FLUSHALL")
        fresh.append(time.monotonic() - flushed)
        log(f"takeover: FLUSHALL {n + 1}/{count}: rewritten {rewrite[-1]:.2f}s, fresh on /ws {fresh[-1]:.2f}s")
    return {"rewritten": figures(rewrite), "fresh_ws": figures(fresh)}


def run(cfg: TakeoverConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="lb-bench-takeover-"))
    redis = None
    try:
        if cfg.store == "redis":
            redis = RedisServer()
            redis.start()
            store_env = {"REDIS_URL": redis.url, "CACHE_DIR": str(workdir / "unused")}
        else:
            store_env = {"CACHE_DIR": str(workdir / "store")}
        with live_stack(workdir, store_env, accounts=2) as stack:
            stack.wait_until(stack.fresh_everywhere, 30, "fresh data first")
            watcher = WsWatcher(stack.web.ws_url, name="bench")
            try:
                result: dict[str, Any] = {
                    "config": vars(cfg),
                    "kill_9": figures(_rounds(stack, watcher, signal.SIGKILL, cfg.trials, log)),
                    "sigterm": figures(_rounds(stack, watcher, signal.SIGTERM, cfg.handovers, log))}
                if cfg.store == "redis" and cfg.flushes:
                    result["flushall"] = _flushes(stack, watcher, cfg.flushes, log)
                result["client_violations"] = len(watcher.violations) + len(no_seq_names_two_bodies(watcher))
            finally:
                watcher.close()
        log(f"takeover: kill -9 p50 {result['kill_9']['p50_s']}s max {result['kill_9']['max_s']}s; "
            f"SIGTERM p50 {result['sigterm']['p50_s']}s max {result['sigterm']['max_s']}s")
        return result
    finally:
        if redis is not None:
            redis.stop()
