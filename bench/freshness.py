"""Freshness: a simulator trade (`POST /_sim/accounts/{i}/trade`) until it is visible in REST and on /ws.

simulator → worker (upstream WS account_all) → store → web. The market is paused so the only changes are ours;
each trial buys a little more, so the expected position size is unique per trial. t0 is taken just before the
control POST. REST: a poller with If-None-Match every ~2 ms until the body shows the new position. /ws: a probe
client, and (loaded phases) 1,000 more clients whose receipt times of the same seq are collected too. Each phase
runs with full updates and with patch updates (`?updates=patch`, docs/websocket.md), probe and clients alike.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonpatch
import orjson
from websockets.sync.client import connect

from bench import stats
from bench.clients import ClientPool
from bench.stack import Stack, running

MARKET, SIZE = 0, "0.01"


@dataclass
class FreshnessConfig:
    trials: int = 40
    gap_s: float = 0.5  # one trade per 0.5 s: each becomes several changes (position, trades, stats...)
    background_clients: tuple[int, ...] = (0, 1000)
    updates: tuple[str, ...] = ("full", "patch")
    store: str = "redis"


def position_of(positions: Any, market: int) -> tuple[Any, Any] | None:
    """(sign, size string) of `market` in a positions list or map, as Lighter renders it."""
    rows = positions.values() if isinstance(positions, dict) else (positions or [])
    for row in rows:
        if isinstance(row, dict) and int(row.get("market_id", -1)) == market:
            return row.get("sign"), row.get("position")
    return None


class Probe:
    """One /ws client in a thread, keeping (receipt time, seq, position) of every message for one account."""

    def __init__(self, url: str, account: int) -> None:
        self.account, self.seen, self.cond, self.held = account, [], threading.Condition(), {}
        self.update_bytes: dict[str, list[int]] = {"patch": [], "full": []}  # this account's updates, by form
        self.ws = connect(url, compression=None, max_size=2**24)
        threading.Thread(target=self._run, daemon=True).start()
        with self.cond:  # the initial snapshot first, so no trial is answered by the initial sync
            self.cond.wait_for(lambda: self.seen, timeout=10)
        time.sleep(0.5)

    def _run(self) -> None:
        try:
            for raw in self.ws:
                now = time.time()
                msg = orjson.loads(raw)
                if msg.get("type") == "confirm" and msg.get("account_index") == self.account:
                    self.held = {**self.held, "seq": msg["seq"]}  # only freshness moved (protocol 2)
                    continue
                if msg.get("type") in ("update", "snapshot") and msg.get("account_index") == self.account:
                    self.held = jsonpatch.apply_patch(self.held, msg["patch"]) if "patch" in msg else msg["account"]
                    if msg["type"] == "update":
                        self.update_bytes["patch" if "patch" in msg else "full"].append(len(raw))
                    pos = position_of(self.held["sections"]["positions"]["data"], MARKET)
                    with self.cond:
                        self.seen.append((now, msg["seq"], pos))
                        self.cond.notify_all()
        except Exception:  # noqa: BLE001 - the socket closed at the end of the run; waiters time out and report it
            pass

    def wait_for(self, start: int, expected: Any, timeout: float = 5.0) -> tuple[float, int] | None:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for now, seq, pos in self.seen[start:]:
                    if pos == expected:
                        return now, seq
                if not self.cond.wait(max(0.0, end - time.monotonic())) and time.monotonic() >= end:
                    return None

    def close(self) -> None:
        self.ws.close()


def _rest_until(stack: Stack, account: int, expected: Any, timeout: float = 5.0) -> float | None:
    url, etag = f"{stack.web_url}/api/accounts/{account}", None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        resp = stack.session.get(url, headers={"If-None-Match": etag} if etag else {}, timeout=5)
        now = time.time()
        if resp.status_code == 200:
            etag = resp.headers.get("ETag")
            if position_of(resp.json()["sections"]["positions"]["data"], MARKET) == expected:
                return now
        time.sleep(0.002)
    return None


def _trials(stack: Stack, probe: Probe, cfg: FreshnessConfig) -> list[dict[str, Any]]:
    account, out = stack.accounts[0], []
    for _ in range(cfg.trials):
        start = len(probe.seen)
        t0 = time.time()
        body = stack.sim("POST", f"accounts/{account}/trade", {"market_id": MARKET, "size": SIZE, "is_ask": False})
        expected = position_of(body["account"]["positions"], MARKET)
        t_rest = _rest_until(stack, account, expected)
        ws = probe.wait_for(start, expected)
        out.append({"t0": t0, "rest_ms": None if t_rest is None else (t_rest - t0) * 1000,
                    "ws_ms": None if ws is None else (ws[0] - t0) * 1000, "seq": None if ws is None else ws[1]})
        time.sleep(cfg.gap_s)
    return out


def _phase(stack: Stack, clients: int, updates: str, cfg: FreshnessConfig, log: Callable) -> dict[str, Any]:
    url = f"{stack.ws_url}?updates={updates}"
    probe = Probe(url, stack.accounts[0])
    pool, measured, holder = None, {}, {}
    try:
        if clients:
            pool = ClientPool(url, clients, 2, wait_sync=True)
            ready = pool.wait_ready()
            span = cfg.trials * (cfg.gap_s + 0.2) + 30
            windows = [(time.time() + 1, time.time() + 1 + span)]
            thread = threading.Thread(target=lambda: holder.update(r=pool.measure(windows, 1.0, receipts=True)))
            thread.start()
            time.sleep(1.2)
            measured["connected"] = ready["connected"]
        trials = _trials(stack, probe, cfg)
        if pool:
            pool.stop_measure()
            thread.join()
    finally:
        probe.close()
        if pool:
            pool.close()
    rest = [t["rest_ms"] for t in trials if t["rest_ms"] is not None]
    ws = [t["ws_ms"] for t in trials if t["ws_ms"] is not None]
    out = {"background_clients": clients, "updates": updates, **measured, "trials": len(trials),
           "rest_missed": len(trials) - len(rest), "ws_missed": len(trials) - len(ws),
           "rest_p50_ms": stats.exact_percentile(rest, 50), "rest_p99_ms": stats.exact_percentile(rest, 99),
           "ws_p50_ms": stats.exact_percentile(ws, 50), "ws_p99_ms": stats.exact_percentile(ws, 99),
           "ws_max_ms": max(ws) if ws else None,
           "probe_updates": {form: {"count": len(sizes), "bytes_p50": stats.exact_percentile(sizes, 50)}
                             for form, sizes in probe.update_bytes.items()}}
    if pool:
        receipts = holder["r"][0].get("receipts", {})
        all_ws = [r - t["t0"] * 1000 for t in trials if t["seq"] is not None for r in receipts.get(str(t["seq"]), [])]
        out.update(all_clients_ws_samples=len(all_ws), all_clients_ws_p50_ms=stats.exact_percentile(all_ws, 50),
                   all_clients_ws_p99_ms=stats.exact_percentile(all_ws, 99),
                   all_clients_ws_max_ms=max(all_ws) if all_ws else None)
    log(f"freshness with {clients} clients, {updates} updates: "
        f"REST p50/p99 {_ms(out['rest_p50_ms'])}/{_ms(out['rest_p99_ms'])} ms, "
        f"/ws p50/p99 {_ms(out['ws_p50_ms'])}/{_ms(out['ws_p99_ms'])} ms, every client p99 "
        f"{_ms(out.get('all_clients_ws_p99_ms'))} ms")
    return out


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def run(cfg: FreshnessConfig, log=print) -> dict[str, Any]:
    with running(n_accounts=3, store=cfg.store) as stack:
        stack.sim("POST", "market", {"running": False})  # only our trades change anything
        phases = [_phase(stack, n, mode, cfg, log) for n in cfg.background_clients for mode in cfg.updates]
    out: dict[str, Any] = {"config": cfg.__dict__, "phases": phases, "ws_p99_added_ms_by_updates": {}}
    for mode in cfg.updates:
        base = next((p for p in phases if p["background_clients"] == 0 and p["updates"] == mode), None)
        loaded = next((p for p in phases if p["background_clients"] > 0 and p["updates"] == mode), None)
        if base and loaded and base["ws_p99_ms"] is not None:
            worst = loaded.get("all_clients_ws_p99_ms") or loaded["ws_p99_ms"]
            out["ws_p99_added_ms_by_updates"][mode] = worst - base["ws_p99_ms"]
    return out
