"""`python -m bench [fanout|rest|freshness|upstream|memory|takeover ...]`: run benchmarks, write results and the docs.

With no part named, runs all of them (about 10 minutes on 2 cores). A single part updates its section of
bench/results/latest.json and regenerates docs/benchmarks.md from the whole file. `--quick` runs a tiny
version (seconds) for smoke tests.
"""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import alerts, edges, endtoend, fanout, freshness, history, machine, memory, report, rest, takeover, upstream

PARTS = ("fanout", "rest", "freshness", "endtoend", "upstream", "memory", "edges", "history", "takeover", "alerts")


def configs(quick: bool, store: str) -> dict[str, Any]:
    if quick:
        return {"fanout": fanout.FanoutConfig(sizes=(20,), runs=2, window_s={}, runs_by_size={}, default_window_s=2.0,
                                              warmup_s=1.0, grace_s=1.5, store=store, burst_clients=0),
                "rest": rest.RestConfig(seconds=2, runs=1, connections=10, store=store, also_stores=()),
                "freshness": freshness.FreshnessConfig(trials=5, background_clients=(0, 20), store=store),
                "endtoend": endtoend.EndToEndConfig(sizes=(20,), seconds=2, store=store, runs=1),
                "upstream": upstream.UpstreamConfig(window_s=5, settle_s=2, clients=20, store=store),
                "memory": memory.MemoryConfig(sizes=(50, 100), settle_s=0.5, store="file"),
                "edges": edges.EdgesConfig(clients=100, in_flight=32, slow=10, pump_s=3.0, store=store),
                "history": history.QUICK, "alerts": alerts.QUICK,
                "takeover": takeover.TakeoverConfig(trials=1, handovers=1, flushes=1, store=store)}
    return {"fanout": fanout.FanoutConfig(store=store), "rest": rest.RestConfig(seconds=6, store=store),
            "freshness": freshness.FreshnessConfig(store=store), "endtoend": endtoend.EndToEndConfig(store=store),
            "upstream": upstream.UpstreamConfig(store=store),
            "memory": memory.MemoryConfig(store="file"),  # per-client RSS does not depend on the store; the file
            # store lets 10,000 clients connect in ~30 s (with Redis the web accepts ~80 initial syncs/s here)
            "edges": edges.EdgesConfig(store=store), "history": history.HistoryConfig(),
            "takeover": takeover.TakeoverConfig(store=store), "alerts": alerts.AlertsConfig()}


RUNNERS: dict[str, Callable] = {"fanout": fanout.run, "rest": rest.run, "freshness": freshness.run,
                                "endtoend": endtoend.run, "upstream": upstream.run, "memory": memory.run,
                                "edges": edges.run, "history": history.run, "takeover": takeover.run,
                                "alerts": alerts.run}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("parts", nargs="*", help=f"parts to run: {', '.join(PARTS)} (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny scale, for smoke tests")
    p.add_argument("--store", choices=("redis", "file"), default="redis" if shutil.which("redis-server") else "file")
    p.add_argument("--results", type=Path, default=report.RESULTS)
    p.add_argument("--docs", type=Path, default=report.DOCS)
    args = p.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops the servers it started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parts = args.parts or list(PARTS)
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        p.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if "rest" in parts and shutil.which("wrk") is None:
        p.error("the rest part needs wrk (apt-get install wrk, or make bench)")
    cfgs = configs(args.quick, args.store)
    results = report.load(args.results)
    results.update(machine=machine.describe(), store=args.store, quick=args.quick)
    failed = []
    for part in parts:
        started = time.monotonic()
        log(f"{part}: starting")
        try:
            results[part] = {**RUNNERS[part](cfgs[part], log=log), "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "seconds": round(time.monotonic() - started, 1)}
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others' numbers; reported and exit 1
            log(f"{part}: FAILED: {type(exc).__name__}: {exc}")
            failed.append(part)
            continue
        log(f"{part}: done in {results[part]['seconds']} s")
    results["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    report.save(results, args.results)
    args.docs.parent.mkdir(parents=True, exist_ok=True)
    args.docs.write_text(report.markdown(results))
    log(f"wrote {args.results} and {args.docs}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
