"""Benchmark: simulator WS update -> worker -> store latency (the worker issue asks for <= 100 ms).

    .venv/bin/python -m bench.ws_to_store [--trades 50] [--redis]

The clock starts just before the control call that fills a trade (so it includes that HTTP round trip and
the simulator's push) and stops when the store's snapshot shows the new positions. The market is paused so
nothing else moves; REST is stretched (standard tier) so only the WebSocket can deliver within the window.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from tests.fixtures.redis import RedisServer
from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=50)
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    redis = None
    if args.redis:
        redis = RedisServer()
        redis.start()
    store_env = {"REDIS_URL": redis.url} if redis else {"CACHE_DIR": tempfile.mkdtemp(prefix="lb-bench-")}
    try:
        samples = measure(store_env, args.trades)
    finally:
        if redis:
            redis.stop()
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"store={'redis' if redis else 'file'} trades={len(samples)} "  # noqa: T201 - a CLI report
          f"p50={statistics.median(samples):.1f}ms p99={p99:.1f}ms max={samples[-1]:.1f}ms")


def measure(store_env: dict[str, str], trades: int, warmup_s: float = 0.0) -> list[float]:
    """ms from each simulator trade to the store holding it; `warmup_s` of steady running first (the worker's start
    work, such as history's migration and first backfill, is not what a trade pays)."""
    with run_simulator(tick_ms=100) as sim:
        env = worker_env_for(sim, store_env, accounts=1)
        with run_worker(env) as worker:
            store = worker.store()
            index = sim.control.accounts()[0]["account_index"]
            worker.wait_for(lambda: (s := store.account(index)) and s["sections"]["positions"]["data"], 15)
            if warmup_s:
                worker.run_for(warmup_s)
            sim.control.pause()
            samples = []
            for n in range(trades):
                settled = store.account(index)["sections"]["positions"]["data"]
                worker.wait_for(lambda: store.account(index)["sections"]["positions"]["data"]
                                == sim.control.state(index)["account"]["positions"], 5)
                started = time.perf_counter()
                sim.control.trade(index, 0, "0.0100", n % 2 == 0)
                worker.wait_for(lambda: store.account(index)["sections"]["positions"]["data"] != settled,
                                2, interval=0.0005)
                samples.append((time.perf_counter() - started) * 1000)
    return samples


if __name__ == "__main__":
    main()
