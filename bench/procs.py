"""Launch and measure the processes under test: our web (gunicorn), the bare Flask app, the reference server,
the simulator, the worker and a private redis-server. Everything binds to 127.0.0.1 and is stopped by its pid."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.error import HTTPError
from urllib.request import urlopen

import psutil

ROOT = Path(__file__).resolve().parent.parent
STRIPPED_ENV = ("Lighter_", "REDIS_URL", "API_TOKEN", "RATE_LIMIT", "CACHE_DIR", "LIGHTER_", "UPSTREAM_")
HIGH_RATE_LIMIT = "10000/second"  # limiting stays ON: above any rate one wrk (one address) reaches here, and each
# 1 s window opens anew (its X-RateLimit-Reset read again), as a short real limit would


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to this child when the bench process dies, even by SIGKILL, so a
    killed bench never leaves servers behind (Linux; elsewhere a no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, deadline_s: float = 30) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {deadline_s}s")


class Server:
    """A child process; its output is kept (last 200 lines) for error messages. Stop with stop()."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str] | None = None,
                 ready: str | None = None, port: int | None = None, deadline_s: float = 30) -> None:
        self.name = name
        self.lines: deque[str] = deque(maxlen=200)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_ENV)}
        full_env = {**inherited, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1, start_new_session=True,
                                     preexec_fn=die_with_parent)
        self.match: re.Match | None = None
        self._ready = threading.Event()
        self._pattern = re.compile(ready) if ready else None
        threading.Thread(target=self._drain, daemon=True).start()
        try:
            if self._pattern is not None and not self._ready.wait(deadline_s):
                raise RuntimeError(f"{name} did not print {ready!r} within {deadline_s}s:\n{self.output()}")
            if self._pattern is not None and self.match is None:
                raise RuntimeError(f"{name} exited before it was ready:\n{self.output()}")
            if port is not None:
                wait_port(port, self.proc, deadline_s)
        except BaseException:
            self.stop()
            raise
        self.ps = psutil.Process(self.proc.pid)

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if self._pattern is not None and self.match is None:
                self.match = self._pattern.search(line)
                if self.match:
                    self._ready.set()
        self._ready.set()

    def output(self) -> str:
        return "\n".join(self.lines)

    def tree(self) -> list[psutil.Process]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.tree():
            try:
                t = proc.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only what we started
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reference(rate: float, payload_bytes: int, accounts: int = 10, max_seconds: float = 900,
              wait_start: bool = False, sync: bool = False) -> Server:
    return Server("reference", [sys.executable, "-m", "bench.reference_server", "--rate", str(rate), "--bytes",
                                str(payload_bytes), "--accounts", str(accounts), "--max-seconds", str(max_seconds),
                                *(["--wait-start"] if wait_start else []), *(["--sync"] if sync else [])],
                  ready=r"listening on ws://127\.0\.0\.1:(\d+)/")


def gunicorn(app: str, env: dict[str, str], worker_connections: int = 12000, workers: int = 1) -> tuple[Server, int]:
    """Our gunicorn settings (gunicorn.conf.py) serving `app`; only bind and worker_connections are overridden
    (the config's 10,000 is one short of the 10,000-client memory figure)."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
           "--worker-connections", str(worker_connections), "--backlog", "4096"]
    server = Server(app, cmd + [app], env={**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)}, port=port,
                    deadline_s=60)
    # gunicorn's master listens before its worker has imported the app: until the worker answers, a connection
    # waits in the backlog, and a bench timing its first clients would time the app's import instead.
    end = time.monotonic() + 60
    while True:
        try:
            with urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                break
        except HTTPError:
            break  # any answer is the worker's (the bare app has no /health)
        except OSError:
            pass
        if time.monotonic() > end or not server.alive():
            server.stop()
            raise RuntimeError(f"{app} did not answer /health within 60 s:\n{server.output()[-2000:]}")
        time.sleep(0.05)
    return server, port


# The load generator is one address (127.0.0.1) standing for thousands of real clients: the per-address and
# per-process handshake pacing (docs/security.md) would refuse most of a fan-out run's clients with 1013, which
# the fan-out, memory and end-to-end parts do not retry. They measure serving, so pacing is lifted there;
# bench/edges.py measures the pacing itself with the defaults.
UNPACED = {"WEB_WS_ADMIT_PER_S": "1000000", "WEB_WS_ADMIT_PER_ADDRESS_PER_S": "1000000"}


def web_env(store_env: dict[str, str], accounts: list[int], extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for our web and worker: the given store, these accounts, rate limiting on with a huge limit,
    handshake pacing lifted (UNPACED; `extra` may restore it)."""
    env = {"RATE_LIMIT": HIGH_RATE_LIMIT, "LOG_LEVEL": "WARNING", "DOTENV_FILE": "", **UNPACED,
           **store_env}
    for i, index in enumerate(accounts):
        env[f"Lighter_1_B{i}_Account_Index"] = str(index)
    return {**env, **(extra or {})}


def simulator(accounts: int, tier: str = "premium", extra: list[str] | None = None) -> tuple[Server, str]:
    server = Server("simulator", [sys.executable, "-m", "simulator", "--port", "0", "--accounts", str(accounts),
                                  "--seed", "1", "--tier", tier, *(extra or [])],
                    ready=r"simulator listening on (http://[^\s]+?:\d+)")
    return server, server.match.group(1)


def worker(env: dict[str, str]) -> Server:
    return Server("worker", [sys.executable, "worker.py"], env=env)


class Redis:
    """A private redis-server on a free port (never the machine's shared 6379)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make system-deps)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="lb-bench-redis-")
        self.server = Server("redis", [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", self.dir, "--maxclients", "20000"],
                             port=self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def store_env(kind: str, tmp: str) -> tuple[dict[str, str], Any]:
    """Environment selecting a fresh store of `kind` ("file" or "redis"); returns (env, handle to stop)."""
    # Each run's history database is its own (never the repository's .cache/history.sqlite3).
    env = {"CACHE_DIR": os.path.join(tmp, "store"), "DATABASE_URL": f"sqlite:///{os.path.join(tmp, 'history.sqlite3')}"}
    if kind == "redis":
        redis = Redis()
        return {**env, "REDIS_URL": redis.url}, redis
    return env, None
