"""`python -m bench edges`: the hostile-edge figures (docs/security.md).

- Connect burst: `clients` WebSockets opened from one process with `in_flight` handshakes at once, each counted
  when its initial sync is complete (ours: hello, snapshots, status). A client refused with a retry hint (1013,
  or 429 from the per-address connection cap) waits 1 s and tries again. Ours is measured with the default
  pacing, and with pacing lifted (the per-address limits set high, as behind a proxy that does its own), next to
  the `websockets` reference twice: sending the same initial sync (`--sync`: hello, a snapshot per account of the
  same size, status), and as a bare handshake (it sends nothing on connect).
- Slow readers: `slow` clients complete the handshake and never read while ~20 KB updates flow; the web's peak
  RSS growth divided by `slow` is the cost of one slow reader (each may owe WEB_WS_BACKLOG_BYTES of shared frames).
"""
from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from bench import procs, stats
from bench.fanout import ACCOUNTS, WS_PATH
from bench.wire import parse_frame
from core.tuning import WebTuning

# procs.web_env lifts the pacing for the serving benches; here the defaults are what is measured.
PACED = {"WEB_WS_ADMIT_PER_S": str(WebTuning().ws_admit_per_s),
         "WEB_WS_ADMIT_PER_ADDRESS_PER_S": str(WebTuning().ws_admit_per_address_per_s)}
UNPACED = {"WEB_WS_ADMIT_PER_S": "100000", "WEB_WS_ADMIT_PER_ADDRESS_PER_S": "100000",
           "WEB_CONNS_PER_ADDRESS": "100000"}


WARM_UP = 5  # connections before each timed burst, on every server alike


@dataclass
class EdgesConfig:
    clients: int = 1000
    in_flight: int = 128
    bursts: int = 3                   # timed bursts per server (median and range)
    slow: int = 50
    update_bytes: int = 20_000
    pump_s: float = 10.0
    store: str = "file"


async def _client(port: int, path: str, sync: bool, deadline_s: float) -> tuple[bool, int]:
    """Connect until synced (retrying after a refusal's 1 s hint); (synced, refusals)."""
    end, refusals = time.monotonic() + deadline_s, 0
    while time.monotonic() < end:
        outcome = await _attempt(port, path, sync, end - time.monotonic())
        if outcome == "synced":
            return True, refusals
        if outcome != "retry":
            return False, refusals
        refusals += 1
        await asyncio.sleep(1.0)
    return False, refusals


WRITERS: list[asyncio.StreamWriter] = []


async def _attempt(port: int, path: str, sync: bool, deadline_s: float) -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), deadline_s)
    except (OSError, TimeoutError):
        return "failed"
    WRITERS.append(writer)
    writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline_s)
        if not head.startswith(b"HTTP/1.1 101"):
            return "retry" if head.startswith(b"HTTP/1.1 429") else "failed"
        if not sync:
            return "synced"
        buf = b""
        while True:
            frame = parse_frame(buf)
            if frame is None:
                chunk = await asyncio.wait_for(reader.read(65536), deadline_s)
                if not chunk:
                    return "failed"
                buf += chunk
                continue
            opcode, payload, buf = frame
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 0
                return "retry" if code == 1013 else "failed"
            if b'"type":"status"' in payload[:40]:
                return "synced"
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        return "failed"


async def _burst(port: int, path: str, clients: int, in_flight: int, sync: bool, warm_up: int = 0) -> dict[str, Any]:
    """`clients` connections, `in_flight` at a time, timed; after `warm_up` untimed ones (a server's first connection
    starts its store watcher and fills its caches: the burst measures the steady connect rate)."""
    for _ in range(warm_up):
        await _client(port, path, sync, 30)
    gate = asyncio.Semaphore(in_flight)

    async def one() -> tuple[bool, int]:
        async with gate:
            return await _client(port, path, sync, 120)

    started = time.monotonic()
    try:
        outcomes = await asyncio.gather(*(one() for _ in range(clients)))
    finally:
        took = time.monotonic() - started
        for writer in WRITERS:
            writer.close()
        WRITERS.clear()
    synced = sum(ok for ok, _ in outcomes)
    return {"clients": clients, "synced": synced, "refusals_retried": sum(n for _, n in outcomes),
            "seconds": round(took, 2), "per_s": round(synced / took, 1)}


def _ours(cfg: EdgesConfig, tmp: str, extra: dict[str, str]) -> tuple[list, procs.Server, int, dict[str, str]]:
    env, redis = procs.store_env(cfg.store, tmp)
    env = procs.web_env(env, ACCOUNTS, extra)
    subprocess.run([sys.executable, "-m", "bench.driver", "--seconds", "0.5", "--rate", "20", "--first-account",
                    str(ACCOUNTS[0]), "--accounts", str(len(ACCOUNTS)), "--bytes", str(cfg.update_bytes)],
                   cwd=procs.ROOT, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    web, port = procs.gunicorn("wsgi:app", env)
    return [web, *([redis] if redis else [])], web, port, env


def _descriptors(server: procs.Server) -> int:
    return sum(p.num_fds() for p in server.tree())


def _bursts(server: procs.Server, port: int, path: str, cfg: EdgesConfig, sync: bool) -> dict[str, Any]:
    """`cfg.bursts` timed bursts on one server (the warm-up before the first): each figure's median and range.
    Before each burst the server has closed the previous one's connections (its descriptors are back to where
    they were), so no burst pays for the one before."""
    runs, idle = [], _descriptors(server)
    for i in range(cfg.bursts):
        end = time.monotonic() + 15
        while _descriptors(server) > idle + 16 and time.monotonic() < end:
            time.sleep(0.05)
        runs.append(asyncio.run(_burst(port, path, cfg.clients, cfg.in_flight, sync, warm_up=WARM_UP if i == 0 else 0)))
    return {"clients": cfg.clients, "synced": min(r["synced"] for r in runs),
            "refusals_retried": sum(r["refusals_retried"] for r in runs), "bursts": len(runs),
            "seconds": stats.spread([r["seconds"] for r in runs]), "per_s": stats.spread([r["per_s"] for r in runs])}


def connect_burst(cfg: EdgesConfig, log=print) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, extra in (("ours", PACED), ("ours_unpaced", UNPACED)):
        with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
            stops, web, port, _ = _ours(cfg, tmp, extra)
            try:
                out[name] = _bursts(web, port, WS_PATH, cfg, sync=True)
            finally:
                for item in stops:
                    item.stop()
        log(f"edges: {name}: {out[name]['per_s']}")
    # The reference twice: as a bare handshake, and sending what ours sends on connect (a hello, every account's
    # snapshot of the same size, a status) to clients that wait for it, as they wait for ours.
    for name, sync in (("reference", False), ("reference_sync", True)):
        ref = procs.reference(0, cfg.update_bytes, len(ACCOUNTS), sync=sync)
        try:
            out[name] = _bursts(ref, int(ref.match.group(1)), "/", cfg, sync)
        finally:
            ref.stop()
        log(f"edges: {name}: {out[name]['per_s']}")
    return out


def slow_readers(cfg: EdgesConfig, log=print) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        stops, web, port, env = _ours(cfg, tmp, PACED)
        sockets: list[socket.socket] = []
        pump = [sys.executable, "-m", "bench.driver", "--rate", "50", "--first-account", str(ACCOUNTS[0]),
                "--accounts", str(len(ACCOUNTS)), "--bytes", str(cfg.update_bytes)]
        try:
            # Warm up first (the first clients and changes start the watcher, fill the mirror, grow the pools):
            # the baseline is the steady state a slow reader is added to.
            asyncio.run(_burst(port, WS_PATH, 5, 5, sync=True))
            subprocess.run([*pump, "--seconds", "2"], cwd=procs.ROOT, check=True, env={**os.environ, **env},
                           stdout=subprocess.DEVNULL)
            baseline = web.rss_bytes()
            for _ in range(cfg.slow):
                sock = socket.socket()
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", port))
                key = base64.b64encode(os.urandom(16)).decode()
                sock.sendall((f"GET {WS_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
                sockets.append(sock)
            peak, stop = [baseline], threading.Event()

            def sample() -> None:
                while not stop.wait(0.05):
                    peak[0] = max(peak[0], web.rss_bytes())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            subprocess.run([*pump, "--seconds", str(cfg.pump_s)], cwd=procs.ROOT, check=True,
                           env={**os.environ, **env}, stdout=subprocess.DEVNULL)
            stop.set()
            sampler.join(timeout=5)
            after = web.rss_bytes()
        finally:
            for sock in sockets:
                sock.close()
            for item in stops:
                item.stop()
    out = {"slow_clients": cfg.slow, "update_bytes": cfg.update_bytes, "baseline_rss_mb": round(baseline / 2**20, 1),
           "peak_rss_mb": round(peak[0] / 2**20, 1), "after_rss_mb": round(after / 2**20, 1),
           "kb_per_slow_client": round((peak[0] - baseline) / 1024 / cfg.slow, 1)}
    log(f"edges: slow readers: {out}")
    return out


def run(cfg: EdgesConfig, log=print) -> dict[str, Any]:
    from bench.wsclient import raise_fd_limit

    limit = raise_fd_limit(cfg.clients * 2 + 4096)
    return {"config": {**cfg.__dict__, "fd_limit": limit}, "connect_burst": connect_burst(cfg, log),
            "slow_readers": slow_readers(cfg, log)}
