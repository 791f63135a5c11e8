"""Benchmark: what history costs and how fast its biggest query is.

    .venv/bin/python -m bench.history [--quick]        (also `python -m bench history`)

1. The worker's upstream-frame → store latency (bench/ws_to_store.py's method: a simulator trade, until the store
   shows the new positions) with history off and on (SQLite); the issue allows the history path ≤ 1 ms on the p99.
2. A 90-day equity query for one account sampled every 10 s, as retention leaves it (the last 7 days every 10 s,
   older days one sample a minute), bucketed to 500 points on SQLite; target ≤ 100 ms. Also on the raw 90 days
   (no downsampling) for reference.
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ws_to_store import measure
from core.history.db import HistoryDB

DAY_MS = 86_400_000
SAMPLE_MS = 10_000
POINTS = 500


@dataclass(frozen=True)
class HistoryConfig:
    trades: int = 100         # per latency run
    rounds: int = 2           # latency runs per setting, alternating off and on
    warmup_s: float = 5.0     # after the first snapshot, before the first trade
    days: int = 90
    raw_days: int = 90        # the undownsampled reference
    queries: int = 30


QUICK = HistoryConfig(trades=10, rounds=1, warmup_s=1.0, days=3, raw_days=3, queries=5)


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def latency(cfg: HistoryConfig, log: Callable[[str], None]) -> dict[str, Any]:
    """History off and on, alternated `cfg.rounds` times (the machine's load drifts; both see the same drift)."""
    samples: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(cfg.rounds):
        for label, enabled in (("off", "0"), ("on", "1")):
            directory = tempfile.mkdtemp(prefix="lb-bench-history-")
            env = {"CACHE_DIR": f"{directory}/store", "HISTORY_ENABLED": enabled,
                   "DATABASE_URL": f"sqlite:///{directory}/history.sqlite3"}
            samples[label] += measure(env, cfg.trades, cfg.warmup_s)
    out: dict[str, Any] = {}
    for label, values in samples.items():
        out[label] = {"p50_ms": round(statistics.median(values), 2), "p99_ms": round(_p(values, 0.99), 2),
                      "trades": len(values)}
        log(f"history: frame->store with history {label}: {out[label]}")
    out["p99_added_ms"] = round(out["on"]["p99_ms"] - out["off"]["p99_ms"], 2)
    out["p50_added_ms"] = round(out["on"]["p50_ms"] - out["off"]["p50_ms"], 2)
    return out


def seed(db: HistoryDB, days: int, downsampled: bool, now: int) -> int:
    """One account's samples over `days` up to `now`; with `downsampled`, one a minute beyond 7 days."""
    rows: list[dict[str, Any]] = []
    count = 0
    start = now - days * DAY_MS
    recent = now - 7 * DAY_MS
    ts = start
    while ts < now:
        step = 60_000 if downsampled and ts < recent else SAMPLE_MS
        equity = 10_000 + 500 * math.sin(ts / 3_600_000)
        rows.append({"account_index": 7, "ts": ts, "equity": f"{equity:.6f}", "equity_f": equity,
                     "collateral": "9000.000000", "upnl": "0.000000", "margin_usage": "10.00", "leverage": "1.00"})
        ts += step
        if len(rows) == 50_000:
            count += db.write({"equity_samples": rows})
            rows = []
    count += db.write({"equity_samples": rows})
    return count


def query(cfg: HistoryConfig, days: int, downsampled: bool, log: Callable[[str], None]) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="lb-bench-history-"))
    db = HistoryDB(f"sqlite:///{directory / 'history.sqlite3'}")
    db.migrate()
    now = int(time.time() * 1000)
    rows = seed(db, days, downsampled, now)
    bucket_ms = math.ceil(days * DAY_MS / POINTS / 1000) * 1000
    timings = []
    points = 0
    for _ in range(cfg.queries):
        started = time.perf_counter()
        points = len(db.equity_buckets(7, now - days * DAY_MS, now, bucket_ms))
        timings.append((time.perf_counter() - started) * 1000)
    db.close()
    result = {"days": days, "rows": rows, "points": points, "median_ms": round(statistics.median(timings), 1),
              "p99_ms": round(_p(timings, 0.99), 1), "size_bytes": (directory / "history.sqlite3").stat().st_size}
    log(f"history: {days}-day equity query ({'downsampled' if downsampled else 'raw'}): {result}")
    return result


def run(cfg: HistoryConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    return {"frame_to_store": latency(cfg, log),
            "equity_query": query(cfg, cfg.days, True, log),
            "equity_query_raw": query(cfg, cfg.raw_days, False, log),
            "targets": {"p99_added_ms": 1.0, "equity_query_ms": 100.0}}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    run(QUICK if args.quick else HistoryConfig())


if __name__ == "__main__":
    main()
