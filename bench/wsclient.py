"""`python -m bench.wsclient`: one load-generator process holding many asyncio `websockets` clients.

Each client is `websockets`' sans-I/O protocol on a bare asyncio.Protocol (bench.leanws): the library's own
handshake and framing at a quarter of the CPU per message of its full asyncio client.

Driven over stdin/stdout with JSON lines, so a parent can run several of these in separate processes:
  -> {"event": "ready", "connected": n, "failed": m}          once every client has tried to connect
  <- {"cmd": "measure", "windows": [[t0, t1], ...], "grace_s": 3}   (wall-clock seconds)
  -> {"event": "measured", ...}                                 after the last window plus grace
  <- {"cmd": "stop"}                                            ends a measurement early
  <- {"cmd": "close"}  -> {"event": "closed"}                   then the process exits
A bounded run: the process also exits by itself after --max-seconds.
Latency is server stamp → receipt, binned by the window the stamp falls in. Loss is counted from the global
`seq` (every client subscribes to all accounts, and a single writer bumps seq by one per change) and from each
account's `prev_seq`.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import time
from typing import Any

import orjson
import uvloop

from bench import protocol, stats
from bench.leanws import open_client


class Client:
    __slots__ = ("seq", "last_by_account", "missing", "prev_seq_breaks", "resyncs", "closed", "received",
                 "error", "connected", "bytes", "ordinal")

    def __init__(self) -> None:
        self.seq: int | None = None
        self.last_by_account: dict[int, int] = {}
        self.missing = 0            # global seq numbers never received
        self.prev_seq_breaks = 0    # updates whose prev_seq is not the last seq seen for that account
        self.resyncs = 0
        self.closed = False
        self.received: list[int] = []
        self.error: str | None = None
        self.connected = False
        self.bytes = 0              # message bytes received while measuring
        self.ordinal = 0            # messages received while measuring (--ordinal)


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clients = [Client() for _ in range(args.clients)]
        self.windows: list[tuple[float, float]] = []
        self.hists: list[dict[int, int]] = []
        self.connected = 0
        self.failed = 0
        self.slow_syncs = 0  # initial syncs that took longer than 10 s (slot released by timeout)
        self.first_error: str | None = None
        self.measuring = False
        self.receipts: dict[int, list[float]] | None = None
        self.stop_measure = asyncio.Event()

    def handle(self, client: Client, raw: bytes) -> str | None:
        """Account for one message; returns its type."""
        now = time.time() * 1000
        if self.measuring:
            client.bytes += len(raw)
        if self.args.ordinal:
            # A relay that forwards upstream frames in one order to everyone: the k-th message since the
            # measurement began is the same frame for every client, so receipts are keyed by that ordinal.
            if self.measuring and self.receipts is not None:
                client.ordinal += 1
                self.receipts.setdefault(client.ordinal, []).append(round(now, 1))
            return "update"
        quick = protocol.quick_update(raw)
        if quick is not None:
            return self._update(client, now, *quick)
        msg = orjson.loads(raw)
        kind = msg.get("type")
        if kind == "snapshot":  # initial sync, or a resync after the client fell behind / a store gap
            if msg.get("resync"):
                client.resyncs += 1
            client.last_by_account[msg["account_index"]] = msg["seq"]
            client.seq = max(client.seq or 0, msg["seq"])
            return kind
        if kind == "confirm":  # /ws protocol 2: a change that only moved freshness (docs/websocket.md)
            self._update(client, now, msg["seq"], msg.get("prev_seq"), msg["account_index"], None)
            return kind
        if kind != "update":
            return kind
        return self._update(client, now, msg["seq"], msg.get("prev_seq"), msg["account_index"],
                            protocol.stamp_of(msg))

    def _update(self, client: Client, now: float, seq: int, prev_seq: int | None, account: int,
                stamp: float | None) -> str:
        if self.measuring and client.seq is not None and seq > client.seq + 1:
            client.missing += seq - client.seq - 1
        if client.seq is None or seq > client.seq:
            client.seq = seq
        last = client.last_by_account.get(account)
        if self.measuring and last is not None and prev_seq is not None and prev_seq != last:
            client.prev_seq_breaks += 1
        client.last_by_account[account] = seq
        if stamp is None and self.receipts is not None and self.measuring:
            self.receipts.setdefault(seq, []).append(round(now, 1))
        if stamp is None or not self.windows:
            return "update"
        stamp_s = stamp / 1000
        for i, (t0, t1) in enumerate(self.windows):
            if t0 <= stamp_s < t1:
                stats.record(self.hists[i], now - stamp)
                client.received[i] += 1
                break
        return "update"

    async def run_client(self, client: Client, gate: asyncio.Semaphore) -> None:
        """Connect, then read until closed. With --wait-sync the handshake slot is held until the server's
        initial sync is done (first `status`/`update`), so at most --handshakes syncs run at once."""
        await gate.acquire()
        held = [True]

        def release() -> None:
            if held[0]:
                held[0] = False
                gate.release()

        def on_message(payload: bytes) -> None:
            if self.handle(client, payload) in ("status", "update"):
                release()
        try:
            ws = await open_client(self.args.url, on_message)
            if self.args.subscribe:
                ws.send_text(self.args.subscribe)
            self.connected += 1
            client.connected = True
        except Exception as exc:  # noqa: BLE001 - counted and reported: a benchmark reports failures, it does not hide them
            release()
            self.failed += 1
            client.closed, client.error = True, f"{type(exc).__name__}: {exc}"
            self.first_error = self.first_error or client.error
            return
        if not self.args.wait_sync:
            release()
        else:
            def timed_out() -> None:
                if held[0]:
                    self.slow_syncs += 1
                    release()
            asyncio.get_running_loop().call_later(10, timed_out)  # never wedge the pool on a silent server
        try:
            client.error = f"closed: {await ws.done}"
        finally:
            release()
            client.closed = True
            ws.close()

    async def measure(self, windows: list[list[float]], grace_s: float, receipts: bool = False) -> dict[str, Any]:
        for client in self.clients:
            client.received = [0] * len(windows)
            client.missing = client.prev_seq_breaks = client.resyncs = client.bytes = client.ordinal = 0
        self.hists = [{} for _ in windows]
        self.receipts = {} if receipts else None
        self.stop_measure.clear()
        self.windows = [(float(a), float(b)) for a, b in windows]
        await asyncio.sleep(max(0.0, self.windows[0][0] - time.time()))
        cpu0, wall0 = _cpu(), time.time()
        self.measuring = True
        try:  # until the planned end, or earlier on a "stop" command
            await asyncio.wait_for(self.stop_measure.wait(), max(0.0, self.windows[-1][1] + grace_s - time.time()))
        except TimeoutError:
            pass
        self.measuring = False
        cpu_s, wall_s = _cpu() - cpu0, time.time() - wall0
        result = {"event": "measured", "hists": self.hists, "cpu_percent": 100 * cpu_s / wall_s,
                  "received": [c.received for c in self.clients],
                  "missing": [c.missing for c in self.clients],
                  "prev_seq_breaks": [c.prev_seq_breaks for c in self.clients],
                  "resyncs": [c.resyncs for c in self.clients],
                  "bytes": [c.bytes for c in self.clients],
                  "closed": [c.closed for c in self.clients],
                  "errors": sorted({c.error for c in self.clients if c.error})[:5]}
        if self.receipts is not None:
            result["receipts"] = self.receipts
        self.receipts = None
        self.windows = []
        return result


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main_async(args: argparse.Namespace) -> None:
    harness = Harness(args)
    gate = asyncio.Semaphore(args.handshakes)
    tasks = [asyncio.create_task(harness.run_client(c, gate)) for c in harness.clients]
    deadline = time.monotonic() + args.max_seconds
    connect_deadline = min(deadline, time.monotonic() + args.connect_seconds)
    while harness.connected + harness.failed < args.clients and time.monotonic() < connect_deadline:
        await asyncio.sleep(0.05)
    for client, task in zip(harness.clients, tasks, strict=False):  # past the connect deadline: give up on the rest
        if not client.connected and not task.done():
            task.cancel()
            harness.failed += 1
            client.closed, client.error = True, f"not connected within {args.connect_seconds:.0f} s"
            harness.first_error = harness.first_error or client.error
    _emit({"event": "ready", "connected": harness.connected, "failed": harness.failed,
           "first_error": harness.first_error, "slow_syncs": harness.slow_syncs})
    loop = asyncio.get_running_loop()
    while time.monotonic() < deadline:
        remaining = deadline - time.monotonic()
        try:
            line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), remaining)
        except TimeoutError:
            break
        if not line:
            break
        cmd = json.loads(line)
        if cmd["cmd"] == "measure":
            measuring = asyncio.create_task(harness.measure(cmd["windows"], cmd.get("grace_s", 3.0),
                                                            cmd.get("receipts", False)))
            measuring.add_done_callback(lambda task: _emit(task.result()))
        elif cmd["cmd"] == "stop":
            harness.stop_measure.set()
        elif cmd["cmd"] == "status":
            _emit({"event": "status", "open": sum(not c.closed for c in harness.clients),
                   "connected": harness.connected, "slow_syncs": harness.slow_syncs,
                   "errors": sorted({c.error for c in harness.clients if c.error})[:3]})
        elif cmd["cmd"] == "close":
            break
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    _emit({"event": "closed"})


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE (soft, and hard when we may) to at least `wanted`; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.wsclient")
    p.add_argument("--url", required=True)
    p.add_argument("--clients", type=int, required=True)
    p.add_argument("--subscribe", default="", help="text frame sent after connecting")
    p.add_argument("--handshakes", type=int, default=64, help="concurrent handshakes")
    p.add_argument("--wait-sync", action="store_true", help="hold the handshake slot until the initial sync")
    p.add_argument("--ordinal", action="store_true",
                   help="count every message as one frame of a relay, keyed by its ordinal (bench.relay)")
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--connect-seconds", type=float, default=90, help="give up connecting the rest after this")
    args = p.parse_args(argv)
    raise_fd_limit(args.clients + 256)
    # uvloop: the load generator's own CPU per message decides how many clients 2 cores can measure.
    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
