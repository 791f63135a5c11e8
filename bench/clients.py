"""Parent side of the client harness: several `bench.wsclient` processes, started, measured and closed together."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from bench import stats
from bench.procs import die_with_parent


class ClientPool:
    """`clients` WebSocket clients spread over `processes` load-generator processes; `handshakes` connections
    (and with `wait_sync`, initial syncs) in flight at once over all processes."""

    def __init__(self, url: str, clients: int, processes: int = 2, subscribe: str = "",
                 max_seconds: float = 600, handshakes: int = 16, wait_sync: bool = False,
                 ordinal: bool = False) -> None:
        self.url, self.total = url, clients
        processes = max(1, min(processes, clients))
        share = [clients // processes + (1 if i < clients % processes else 0) for i in range(processes)]
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "bench.wsclient", "--url", url, "--clients", str(n), "--subscribe", subscribe,
             "--max-seconds", str(max_seconds), "--handshakes", str(max(1, handshakes // processes)),
             *(["--wait-sync"] if wait_sync else []), *(["--ordinal"] if ordinal else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, preexec_fn=die_with_parent)
            for n in share]
        self.connected = self.failed = self.slow_syncs = 0
        self.first_error: str | None = None

    def _read(self, proc: subprocess.Popen, event: str) -> dict[str, Any]:
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError(f"client process exited (rc={proc.wait()}) while waiting for {event!r}")
            msg = json.loads(line)
            if msg.get("event") == event:
                return msg

    def wait_ready(self) -> dict[str, Any]:
        """Block until every process has tried all its connections; returns counts."""
        for proc in self.procs:
            msg = self._read(proc, "ready")
            self.connected += msg["connected"]
            self.failed += msg["failed"]
            self.first_error = self.first_error or msg.get("first_error")
            self.slow_syncs += msg.get("slow_syncs", 0)
        return {"connected": self.connected, "failed": self.failed, "first_error": self.first_error,
                "slow_syncs": self.slow_syncs}

    def _send(self, cmd: dict[str, Any]) -> None:
        for proc in self.procs:
            proc.stdin.write(json.dumps(cmd) + "\n")
            proc.stdin.flush()

    def open_count(self) -> int:
        return self.status()["open"]

    def status(self) -> dict[str, Any]:
        """Open clients, connected so far, slow initial syncs and a few close reasons, over all processes."""
        self._send({"cmd": "status"})
        parts = [self._read(p, "status") for p in self.procs]
        return {"open": sum(p["open"] for p in parts), "connected": sum(p["connected"] for p in parts),
                "slow_syncs": sum(p["slow_syncs"] for p in parts),
                "errors": sorted({e for p in parts for e in p["errors"]})[:3]}

    def stop_measure(self) -> None:
        """End a running measure() now (it returns what was recorded so far)."""
        self._send({"cmd": "stop"})

    def measure(self, windows: list[tuple[float, float]], grace_s: float = 3.0,
                receipts: bool = False) -> list[dict[str, Any]]:
        """Measure over the given wall-clock windows; returns one merged result per window. With `receipts`,
        results[0]["receipts"] maps each unstamped update's seq (with `ordinal`, each message's ordinal since the
        measurement began) to every client's receipt time (ms)."""
        self._send({"cmd": "measure", "windows": windows, "grace_s": grace_s, "receipts": receipts})
        parts = [self._read(p, "measured") for p in self.procs]
        results = []
        for i in range(len(windows)):
            received = [r[i] for part in parts for r in part["received"]]
            results.append({"hist": stats.merge(part["hists"][i] for part in parts), "received": received})
        flat = {key: [v for part in parts for v in part[key]] for key in
                ("missing", "prev_seq_breaks", "resyncs", "closed", "bytes")}
        for res in results:
            res.update(flat)
            res["client_cpu_percent"] = [round(p["cpu_percent"], 1) for p in parts]
            res["errors"] = sorted({e for p in parts for e in p["errors"]})[:5]
        if receipts:
            merged: dict[str, list[float]] = {}
            for part in parts:
                for seq, times in part.get("receipts", {}).items():
                    merged.setdefault(seq, []).extend(times)
            results[0]["receipts"] = merged
        return results

    def close(self, timeout: float = 30) -> None:
        for proc in self.procs:
            try:
                proc.stdin.write(json.dumps({"cmd": "close"}) + "\n")
                proc.stdin.flush()
                proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
        end = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> ClientPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
