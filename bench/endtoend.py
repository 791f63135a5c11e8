"""End to end against a relay: a simulator trade until every client has it, ours next to bench.relay.

Both sides are driven by the same simulator trades (market paused, so the trades are the only changes): ours is
the whole service (simulator → worker → store → web → /ws clients); the reference is bench.relay, the seed
project's design (simulator → one process → clients, no store, no worker). For each client count, the two run one
after the other on the same stack, each with its own clients (bench.wsclient processes), and report:
- trade → client latency over every client (p50 / p99 / max): t0 is taken just before the trade's control POST;
  a probe client (full JSON decode) names the message that carries the trade (ours: its seq; the relay: its
  ordinal since the measurement began), and every client's receipt time of that message counts;
- bytes per client per trade: everything a client received during the trades, over the trades (ours also sends
  confirmations and full account bodies; the relay sends the upstream frames as they are).
Each size runs `runs` times, relay then ours; `summary` holds each figure's median and spread over the runs, and the
ratios are of those medians; `summary[n]["added"]`: ours minus the relay, run by run (what the store hop costs).
"""
from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import psutil
from websockets.sync.client import connect

from bench import stats
from bench.clients import ClientPool
from bench.freshness import MARKET, SIZE, Probe, position_of
from bench.procs import Server
from bench.stack import Stack, running


@dataclass
class EndToEndConfig:
    sizes: tuple[int, ...] = (100, 500, 1000)
    trades_per_s: float = 3.0
    seconds: float = 10.0
    updates: str = "patch"      # our /ws update form: protocol 2's default (what a new client gets)
    store: str = "redis"
    # A p99 over 30 trades is set by the worst one or two: each size runs relay and ours back to back this many
    # times (fresh clients each run), and the figures are the median over runs with their spread.
    runs: int = 3


class RelayProbe:
    """One relay client in a thread: (receipt time, ordinal, position) of every frame for one account, counting
    frames from `arm(t)` on, as the load-generator clients count them."""

    def __init__(self, url: str, account: int) -> None:
        self.account, self.seen, self.cond = account, [], threading.Condition()
        self.start_at = float("inf")
        self.count = 0
        self.ws = connect(url, compression=None, max_size=2**24)
        threading.Thread(target=self._run, daemon=True).start()

    def arm(self, at: float) -> None:
        self.start_at = at

    def _run(self) -> None:
        try:
            for raw in self.ws:
                now = time.time()
                if now < self.start_at:
                    continue
                self.count += 1
                msg = orjson.loads(raw)
                if msg.get("type") == "update/account_all" and msg.get("account") == self.account:
                    row = (msg.get("positions") or {}).get(str(MARKET)) or {}
                    with self.cond:
                        self.seen.append((now, self.count, (row.get("sign"), row.get("position"))))
                        self.cond.notify_all()
        except Exception:  # noqa: BLE001 - the socket closed at the end of the run; waiters time out and report it
            pass

    def wait_for(self, start: int, expected: Any, timeout: float = 5.0) -> tuple[float, int] | None:
        with self.cond:
            found = self.cond.wait_for(lambda: next(((t, n) for t, n, pos in self.seen[start:] if pos == expected),
                                                    None), timeout)
        return found or None

    def close(self) -> None:
        self.ws.close()


def _trades(stack: Stack, probe: Any, cfg: EndToEndConfig) -> list[dict[str, Any]]:
    """Trades on a fixed schedule; each waits for the probe to see it (or times out) before the next slot."""
    account, out = stack.accounts[0], []
    gap = 1.0 / cfg.trades_per_s
    begin = time.monotonic()
    for k in range(int(cfg.seconds * cfg.trades_per_s)):
        time.sleep(max(0.0, begin + k * gap - time.monotonic()))
        start = len(probe.seen)
        t0 = time.time()
        body = stack.sim("POST", f"accounts/{account}/trade", {"market_id": MARKET, "size": SIZE, "is_ask": False})
        seen = probe.wait_for(start, position_of(body["account"]["positions"], MARKET))
        out.append({"t0_ms": t0 * 1000, "key": None if seen is None else str(seen[1]),
                    "probe_ms": None if seen is None else (seen[0] - t0) * 1000})
    return out


class ServerCPU:
    """CPU seconds (user + system) a set of server processes and their children spent between start() and stop()."""

    def __init__(self, servers: dict[str, Server]) -> None:
        self.servers = servers
        self.begin: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for name, server in self.servers.items():
            try:
                root = psutil.Process(server.proc.pid)
                out[name] = sum(sum(p.cpu_times()[:2]) for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                out[name] = 0.0
        return out

    def start(self) -> None:
        self.begin = self._now()

    def stop(self, per: int) -> dict[str, float]:
        """Milliseconds of CPU per `per` (trades), per server."""
        end = self._now()
        return {name: round((end[name] - self.begin[name]) * 1000 / max(1, per), 2) for name in self.servers}


def _phase(stack: Stack, target: str, url: str, clients: int, cfg: EndToEndConfig, log: Callable,
           servers: dict[str, Server]) -> dict[str, Any]:
    relay = target == "relay"
    cpu = ServerCPU(servers)
    # The probe connects first, as bench/freshness.py's does: after a burst of connects from this one address, a
    # newcomer may be paced (docs/security.md), and a probe that never synced would miss every trade.
    probe: Any = RelayProbe(url, stack.accounts[0]) if relay else Probe(url, stack.accounts[0])
    pool = ClientPool(url, clients, 2, ordinal=relay, wait_sync=not relay)
    try:
        ready = pool.wait_ready()
        begin = time.time() + 1.0  # quiet (market paused): every client starts counting at the same frame
        if relay:
            probe.arm(begin)
        holder: dict[str, Any] = {}
        span = cfg.seconds + 30
        thread = threading.Thread(target=lambda: holder.update(r=pool.measure([(begin, begin + span)], 1.0,
                                                                              receipts=True)))
        thread.start()
        time.sleep(max(0.0, begin - time.time()) + 0.2)
        cpu.start()
        trades = _trades(stack, probe, cfg)
        time.sleep(1.0)  # the last trade's frames reach every client
        server_cpu = cpu.stop(len(trades))
        pool.stop_measure()
        thread.join()
        measured = holder["r"][0]
    finally:
        probe.close()
        pool.close()
    receipts = measured.get("receipts", {})
    latencies = [r - t["t0_ms"] for t in trades if t["key"] is not None for r in receipts.get(t["key"], [])]
    per_client = sorted(b / max(1, len(trades)) for b, closed in zip(measured["bytes"], measured["closed"],
                                                                    strict=True) if not closed)
    out = {"target": target, "clients": clients, "connected": ready["connected"], "trades": len(trades),
           "probe_missed": sum(t["key"] is None for t in trades), "samples": len(latencies),
           "expected_samples": clients * sum(t["key"] is not None for t in trades),
           "p50_ms": stats.exact_percentile(latencies, 50), "p99_ms": stats.exact_percentile(latencies, 99),
           "max_ms": max(latencies) if latencies else None,
           "bytes_per_client_per_trade": stats.exact_percentile(per_client, 50),
           "client_cpu_percent": measured.get("client_cpu_percent"), "server_cpu_ms_per_trade": server_cpu}
    log(f"endtoend {target} × {clients}: p50/p99 {_ms(out['p50_ms'])}/{_ms(out['p99_ms'])} ms, "
        f"{out['samples']}/{out['expected_samples']} receipts, "
        f"{out['bytes_per_client_per_trade'] or 0:,.0f} B per client per trade, server CPU ms per trade {server_cpu}")
    return out


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def run(cfg: EndToEndConfig, log: Callable = print) -> dict[str, Any]:
    with running(n_accounts=3, store=cfg.store) as stack:
        stack.sim("POST", "market", {"running": False})  # only our trades change anything
        upstream = stack.sim_url.replace("http", "ws", 1) + "/stream"
        with Server("relay", [sys.executable, "-m", "bench.relay", "--upstream", upstream, "--accounts",
                              ",".join(map(str, stack.accounts))], ready=r"relay listening on (ws://\S+)") as relay:
            relay_url = relay.match.group(1)
            ours_url = f"{stack.ws_url}?updates={cfg.updates}"
            # Each phase's server CPU: the relay alone for the relay; web and worker for ours (the store and the
            # simulator are left out of both).
            servers = {"relay": {"relay": relay}, "ours": {"web": stack.web, "worker": stack.worker}}
            phases = [{**_phase(stack, target, url, n, cfg, log, servers[target]), "run": attempt}
                      for n in cfg.sizes for attempt in range(cfg.runs)
                      for target, url in (("relay", relay_url), ("ours", ours_url))]
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    ratios: dict[str, dict[str, float | None]] = {}
    for n in cfg.sizes:
        summary[str(n)] = {target: {figure: stats.spread([p[figure] for p in phases
                                                           if p["target"] == target and p["clients"] == n])
                                    for figure in SUMMARISED} for target in ("relay", "ours")}
        ours, ref = summary[str(n)]["ours"], summary[str(n)]["relay"]
        ratios[str(n)] = {"p99": _ratio(ours["p99_ms"]["median"], ref["p99_ms"]["median"]),
                          "bytes": _ratio(ours["bytes_per_client_per_trade"]["median"],
                                          ref["bytes_per_client_per_trade"]["median"])}
        summary[str(n)]["added"] = {f"{figure}_ms": stats.spread(_added(phases, n, f"{figure}_ms"))
                                    for figure in ("p50", "p99")}
    return {"config": cfg.__dict__, "phases": phases, "summary": summary, "ratios_ours_over_relay": ratios}


def _added(phases: list[dict[str, Any]], clients: int, figure: str) -> list[float | None]:
    """What the store adds: ours minus the relay, run by run (each run's relay and ours ran back to back)."""
    by_run: dict[int, dict[str, Any]] = {}
    for p in phases:
        if p["clients"] == clients:
            by_run.setdefault(p["run"], {})[p["target"]] = p[figure]
    return [None if run.get("ours") is None or run.get("relay") is None else run["ours"] - run["relay"]
            for run in by_run.values()]


SUMMARISED = ("p50_ms", "p99_ms", "bytes_per_client_per_trade")


def _ratio(ours: float | None, ref: float | None) -> float | None:
    return None if ours is None or not ref else ours / ref
