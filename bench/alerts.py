"""Benchmark: condition → webhook delivered, with 10 accounts and a trade every 100 ms.

    .venv/bin/python -m bench.alerts [--quick]        (also `python -m bench alerts`)

The real worker runs against the simulator (its market paused: only our trades fill) with a `fill` rule and one
Standard Webhooks destination: a local receiver (tests/alerts/receiver.py) that verifies every signature. A trade
is made on each account in turn every 100 ms; its latency runs from just before the simulator's trade call to the
receiver having the signed message. ALERTS_GROUP_S=0 (no burst grouping: grouping adds its window by design).
Target (issue 18): p99 ≤ 1 s.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.alerts.receiver import SECRET, receiving
from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for
from tests.waiting import wait_for

TARGET_P99_S = 1.0


@dataclass(frozen=True)
class AlertsConfig:
    accounts: int = 10
    trades: int = 300          # one every `every_s`, round-robin over the accounts
    every_s: float = 0.1
    warmup_s: float = 3.0


QUICK = AlertsConfig(accounts=3, trades=20, warmup_s=1.0)


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def run(cfg: AlertsConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lb-bench-alerts-") as tmp, receiving() as receiver, \
            run_simulator(tick_ms=100) as sim:
        rules = (f'[destinations.bench]\nwebhook = "{receiver.url()}"\nsecret = "{SECRET}"\n'
                 '[[rules]]\nname = "fills"\nwhen = "fill"\n')
        env = worker_env_for(sim, {"CACHE_DIR": str(Path(tmp) / "store")}, accounts=cfg.accounts,
                             UPSTREAM_TIER="unlimited", DATABASE_URL=f"sqlite:///{Path(tmp) / 'h.sqlite3'}",
                             ALERTS=rules, ALERTS_GROUP_S="0")
        indexes = [a["account_index"] for a in sim.control.accounts()[:cfg.accounts]]
        sim.control.pause()
        with run_worker(env) as worker:
            store = worker.store()
            for index in indexes:
                worker.wait_for(lambda i=index: ((store.account(i) or {}).get("sections", {}).get("trades", {})
                                                 .get("data") is not None), 30, message=f"account {index} ready")
            worker.run_for(cfg.warmup_s)
            sent: dict[int, list[float]] = {i: [] for i in indexes}
            start = time.monotonic()
            for n in range(cfg.trades):
                # Paced against the start, not slept: a slow call does not push every later trade back.
                due = start + n * cfg.every_s
                wait_for(lambda due=due: time.monotonic() >= due, cfg.every_s + 5, "the next trade's time",
                         interval=0.002)
                index = indexes[n % len(indexes)]
                sent[index].append(time.monotonic())
                sim.control.trade(index, 0, "0.01", is_ask=bool(n % 2))
            worker.wait_for(lambda: _fills(receiver.delivered()) >= cfg.trades, 60,
                            message=f"{cfg.trades} fills alerted")
        latencies = _latencies(receiver.delivered(), sent)
        verified = all(r.verified for r in receiver.delivered())
    result = {"accounts": cfg.accounts, "trades": cfg.trades, "every_s": cfg.every_s, "messages": len(latencies),
              "signatures_verified": verified,
              "p50_s": round(statistics.median(latencies), 4), "p99_s": round(_p(latencies, 0.99), 4),
              "max_s": round(max(latencies), 4), "target_p99_s": TARGET_P99_S}
    log(f"alerts: condition → delivered p50 {result['p50_s']} s, p99 {result['p99_s']} s, max {result['max_s']} s "
        f"over {len(latencies)} fills")
    return result


def _fills(received: list[Any]) -> int:
    return sum(len(orjson.loads(r.body)["values"]["events"]) for r in received)


def _latencies(received: list[Any], sent: dict[int, list[float]]) -> list[float]:
    """Per account, the k-th fill alerted (by trade id) belongs to the k-th trade made on it."""
    arrivals: dict[int, list[tuple[int, float]]] = {i: [] for i in sent}
    for request in received:
        body = orjson.loads(request.body)
        for fill in body["values"]["events"]:
            arrivals[body["account"]["index"]].append((fill["trade_id"], request.at))
    out: list[float] = []
    for index, times in sent.items():
        ordered = sorted(arrivals[index])
        out += [arrived - made for (_, arrived), made in zip(ordered, times, strict=True)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(orjson.dumps(run(QUICK if args.quick else AlertsConfig()), option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
