"""Fan-out: N /ws clients, 10 accounts × 2 Hz (20 changes/s, ~2 KB each); ours vs a websockets.broadcast() server.

Ours: bench.driver writes stamped snapshots into the store (the worker's role) and gunicorn serves /ws from it,
so latency covers store write → web watcher → per-client queue → socket → client. The reference stamps and
broadcasts in one process. Both are read by the same client harness; each size runs `runs` back-to-back windows
on one set of connections (median and spread are over those windows).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.request import urlopen

from bench import procs, stats
from bench.clients import ClientPool

ACCOUNTS = list(range(1000, 1010))
WS_PATH = "/ws?updates=full"  # whole bodies, as the reference sends them (patches are protocol 2's default)
SUBSCRIBE = ""  # our /ws sends every tracked account by default


@dataclass
class FanoutConfig:
    sizes: tuple[int, ...] = (100, 1000, 2000, 3000, 5000)
    rate_hz: float = 20.0             # changes per second over all accounts (10 accounts × 2 Hz)
    payload_bytes: int = 2048
    runs: int = 3
    runs_by_size: dict[int, int] = field(default_factory=lambda: {2000: 2, 3000: 2, 5000: 2})
    window_s: dict[int, float] = field(default_factory=lambda: {1000: 8.0})
    default_window_s: float = 5.0
    warmup_s: float = 2.0
    grace_s: float = 3.0
    store: str = "redis"
    servers: tuple[str, ...] = ("reference", "ours")
    burst_clients: int = 1000         # reconnect-storm check (0: skip)


def _processes(clients: int) -> int:
    return max(2, min(6, math.ceil(clients / 1000)))


class Sampler:
    """Server CPU seconds and RSS at each window boundary, taken by a thread at those wall-clock times."""

    def __init__(self, server: procs.Server, boundaries: list[float]) -> None:
        self.server, self.samples = server, []
        self.thread = threading.Thread(target=self._run, args=(boundaries,), daemon=True)
        self.thread.start()

    def _run(self, boundaries: list[float]) -> None:
        for t in boundaries:
            time.sleep(max(0.0, t - time.time()))
            self.samples.append((time.time(), self.server.cpu_seconds(), self.server.rss_bytes()))

    def window(self, i: int) -> dict[str, float]:
        self.thread.join()
        (t0, c0, _), (t1, c1, rss) = self.samples[i], self.samples[i + 1]
        return {"cpu_percent": 100 * (c1 - c0) / (t1 - t0), "rss_mb": rss / 2**20, "cpu_s": c1 - c0}


def _window_result(res: dict[str, Any], stamps: list[float], window: tuple[float, float],
                   server: dict[str, float]) -> dict[str, Any]:
    expected = sum(1 for s in stamps if window[0] <= s / 1000 < window[1])
    keep_up = [i for i, closed in enumerate(res["closed"]) if not closed and not res["resyncs"][i]]
    gaps = sum(res["missing"][i] + res["prev_seq_breaks"][i] for i in keep_up)
    undelivered = sum(max(0, expected - res["received"][i]) for i in keep_up)
    delivered = sum(res["received"])
    out = {**stats.latency_summary(res["hist"]), "expected_per_client": expected, "delivered": delivered,
           "clients_keeping_up": len(keep_up), "clients_closed": sum(res["closed"]),
           "clients_resynced": sum(1 for r in res["resyncs"] if r), "lost_keeping_up": gaps,
           "undelivered_after_grace": undelivered, "client_cpu_percent": res["client_cpu_percent"],
           "server_cpu_percent": round(server["cpu_percent"], 1), "server_rss_mb": round(server["rss_mb"], 1),
           "server_cpu_us_per_delivery": round(1e6 * server["cpu_s"] / delivered, 2) if delivered else None}
    if res["errors"]:
        out["errors"] = res["errors"]
    return out


def _start(kind: str, cfg: FanoutConfig, tmp: str, total_s: float) -> tuple[list, procs.Server, str, dict]:
    """Start one server under test; returns (things to stop, the server to measure, its ws URL, store env)."""
    if kind == "reference":
        ref = procs.reference(cfg.rate_hz, cfg.payload_bytes, len(ACCOUNTS), max_seconds=total_s + 300,
                              wait_start=True)
        return [ref], ref, f"ws://127.0.0.1:{ref.match.group(1)}/", {}
    env, redis = procs.store_env(cfg.store, tmp)
    env = procs.web_env(env, ACCOUNTS)
    stops: list = [redis] if redis else []
    # Seed every account once so /ws has data from the first connection.
    subprocess.run([sys.executable, "-m", "bench.driver", "--seconds", "0.5", "--rate", "20", "--first-account",
                    str(ACCOUNTS[0]), "--accounts", str(len(ACCOUNTS))], cwd=procs.ROOT, check=True,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    web, port = procs.gunicorn("wsgi:app", env)
    return [web, *stops], web, f"ws://127.0.0.1:{port}{WS_PATH}", env


def measure(kind: str, clients: int, cfg: FanoutConfig) -> dict[str, Any]:
    window_s = cfg.window_s.get(clients, cfg.default_window_s)
    runs = cfg.runs_by_size.get(clients, cfg.runs)
    total_s = cfg.warmup_s + runs * window_s + cfg.grace_s
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        stops, server, url, env = _start(kind, cfg, tmp, total_s)
        driver = None
        try:
            with ClientPool(url, clients, _processes(clients), SUBSCRIBE, max_seconds=total_s + 300,
                            wait_sync=kind == "ours") as pool:
                t_connect = time.time()
                ready = pool.wait_ready()
                connect_s = time.time() - t_connect
                if kind == "reference":  # pushes for as long as our driver writes, then stops by itself
                    urlopen(f"http://127.0.0.1:{server.match.group(1)}/start?seconds={total_s - cfg.grace_s + 0.5}",
                            timeout=30).close()
                else:
                    driver = subprocess.Popen(
                        [sys.executable, "-m", "bench.driver", "--seconds", str(total_s - cfg.grace_s + 0.5),
                         "--rate", str(cfg.rate_hz), "--bytes", str(cfg.payload_bytes), "--first-account",
                         str(ACCOUNTS[0]), "--accounts", str(len(ACCOUNTS))],
                        cwd=procs.ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                        text=True)
                start = time.time() + cfg.warmup_s
                windows = [(start + i * window_s, start + (i + 1) * window_s) for i in range(runs)]
                sampler = Sampler(server, [w[0] for w in windows] + [windows[-1][1]])
                results = pool.measure(windows, cfg.grace_s)
                still_open = pool.open_count()
            stamps = _stamps(kind, server, driver)
            per_run = [_window_result(r, stamps, w, sampler.window(i))
                       for i, (r, w) in enumerate(zip(results, windows, strict=False))]
        finally:
            if driver is not None and driver.poll() is None:
                driver.terminate()
                driver.wait()
            for item in stops:
                item.stop()
    return {"server": kind, "clients": clients, "connected": ready["connected"], "connect_failed": ready["failed"],
            "first_connect_error": ready["first_error"], "connect_s": round(connect_s, 1),
            "open_at_end": still_open, "window_s": window_s, "runs": per_run, **_summary(per_run)}


def _stamps(kind: str, server: procs.Server, driver: subprocess.Popen | None) -> list[float]:
    if kind == "reference":
        port = server.match.group(1)
        for attempt in range(3):  # a saturated reference may still be flushing its backlog
            try:
                with urlopen(f"http://127.0.0.1:{port}/stats", timeout=60) as resp:
                    return [s for _, s in json.load(resp)["stamps"]]
            except OSError:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")
    out, _ = driver.communicate(timeout=60)
    return [s for _, s in json.loads(out.strip().splitlines()[-1])["stamps"]]


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("p50_ms", "p99_ms", "max_ms", "server_cpu_percent", "server_rss_mb", "server_cpu_us_per_delivery")
    out = {key: stats.spread([r[key] for r in runs]) for key in keys}
    out["lost_keeping_up"] = sum(r["lost_keeping_up"] for r in runs)
    out["undelivered_after_grace"] = sum(r["undelivered_after_grace"] for r in runs)
    out["clients_keeping_up_min"] = min(r["clients_keeping_up"] for r in runs)
    return out


def burst(cfg: FanoutConfig, clients: int = 1000, in_flight: int = 128) -> dict[str, Any]:
    """Reconnect storm: `clients` connect to ours without pacing (`in_flight` handshakes at once, as after a
    restart); how many are closed by the server within a few seconds, and why."""
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        stops, _, url, _ = _start("ours", cfg, tmp, 60)
        try:
            with ClientPool(url, clients, 2, handshakes=in_flight, max_seconds=120) as pool:
                t0 = time.time()
                ready = pool.wait_ready()
                connect_s = time.time() - t0
                time.sleep(3)
                status = pool.status()
        finally:
            for item in stops:
                item.stop()
    return {"clients": clients, "handshakes_in_flight": in_flight, "store": cfg.store,
            "connected": ready["connected"], "connect_s": round(connect_s, 1),
            "closed_by_server": clients - status["open"], "close_reasons": status["errors"]}


def run(cfg: FanoutConfig, log=print) -> dict[str, Any]:
    from bench.wsclient import raise_fd_limit

    limit = raise_fd_limit(max(cfg.sizes) * 2 + 4096)  # inherited by every server and client we start
    results, failures = [], []
    for clients in cfg.sizes:
        for kind in cfg.servers:
            log(f"fanout: {kind} × {clients} clients")
            try:
                results.append(measure(kind, clients, cfg))
            except Exception as exc:  # noqa: BLE001 - keep the other sizes' numbers; the failure is reported in the results
                log(f"  FAILED: {type(exc).__name__}: {exc}")
                failures.append({"server": kind, "clients": clients, "error": f"{type(exc).__name__}: {exc}"})
                continue
            r = results[-1]
            log(f"  connected {r['connected']}/{clients}, p50 {r['p50_ms']['median']} p99 {r['p99_ms']['median']} "
                f"ms, lost {r['lost_keeping_up']}, cpu {r['server_cpu_percent']['median']}%")
    ratios = {}
    for clients in cfg.sizes:
        by = {r["server"]: r for r in results if r["clients"] == clients}
        if "ours" in by and "reference" in by:
            ratios[str(clients)] = stats.ratio(by["ours"]["p99_ms"]["median"], by["reference"]["p99_ms"]["median"])
    out_burst = None
    if cfg.burst_clients and "ours" in cfg.servers:
        out_burst = burst(cfg, cfg.burst_clients)
        log(f"fanout: reconnect storm of {cfg.burst_clients}: {out_burst['closed_by_server']} closed by the server")
    config = {**cfg.__dict__, "window_s": {str(k): v for k, v in cfg.window_s.items()},
              "runs_by_size": {str(k): v for k, v in cfg.runs_by_size.items()}, "fd_limit": limit}
    return {"config": config, "results": results, "failures": failures, "p99_ratio_ours_over_reference": ratios,
            "burst": out_burst}
