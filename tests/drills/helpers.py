"""Machinery shared by the fault drills: a live stack (simulator + worker + web) and waits bounded by deadlines
(never a bare sleep). The clients that check every message they receive are in clients.py.

The checks every drill makes, whatever it breaks:
- no crash: `Stack.assert_alive()` (a process may be down only when the drill killed it);
- no silent loss and last good data served: `WsWatcher`, `RestPoller` and `check_body()` (clients.py).
"""
from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.drills.clients import SECTIONS_WITH_DATA, TTL_S, fully_fresh
from tests.fixtures.simulator import RunningSimulator, run_simulator
from tests.fixtures.web import WebServer, run_web
from tests.fixtures.worker import RunningWorker, run_worker, worker_env_for
from tests.waiting import proc_idle, wait_for

# Worker tuning for quick recovery (core/tuning.py): watchdog, connect timeout, backoff cap, REST-only retry.
FAST_WORKER = {"WORKER_WS_SILENCE_S": "2", "WORKER_WS_CONNECT_TIMEOUT_S": "2", "WORKER_BACKOFF_INITIAL_S": "0.2",
               "WORKER_BACKOFF_MAX_S": "0.5", "WORKER_WS_RETRY_S": "1.5", "WORKER_HTTP_TIMEOUT_S": "1",
               "WORKER_HEALTHY_AFTER_S": "2"}


def pause(seconds: float, proc: subprocess.Popen | None = None) -> None:
    """A bounded wait between polls: on a process when given (returns early if it dies), else on an event."""
    if proc is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=seconds)
    else:
        threading.Event().wait(seconds)


def wait_until(predicate: Callable[[], Any], timeout: float, message: str,
               alive: Callable[[], None] | None = None, interval: float = 0.05,
               proc: subprocess.Popen | None = None) -> Any:
    """Poll `predicate` until truthy (returned); `alive()` is called each round to fail fast on a crash; between
    rounds the wait is on `proc` when given (tests/waiting.py)."""
    return wait_for(predicate, timeout, message, interval, alive=alive,
                    idle=proc_idle(proc) if proc is not None else None)


# -- the stack ---------------------------------------------------------------------------------------------------
@dataclass
class Stack:
    sim: RunningSimulator
    worker: RunningWorker
    web: WebServer
    worker_env: dict[str, str]
    web_env: dict[str, str]
    accounts: list[int]
    exits: contextlib.ExitStack
    log_dir: Path
    killed: set[str] = field(default_factory=set)
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.trust_env = False

    def procs(self) -> dict[str, subprocess.Popen]:
        found = {"simulator": self.sim.proc, "worker": self.worker.proc, "web": self.web.proc}
        return {name: proc for name, proc in found.items() if name not in self.killed}

    def assert_alive(self) -> None:
        for name, proc in self.procs().items():
            if proc.poll() is not None:
                detail = self.worker.log_text()[-3000:] if name == "worker" else (
                    self.web.log()[-3000:] if name == "web" else "")
                raise AssertionError(f"{name} exited with {proc.returncode} (nobody killed it)\n{detail}")

    def wait_until(self, predicate: Callable[[], Any], timeout: float, message: str, interval: float = 0.05) -> Any:
        return wait_until(predicate, timeout, message, alive=self.assert_alive, interval=interval,
                          proc=self.web.proc)

    def run_for(self, seconds: float) -> None:
        """Let the stack run (a bounded wait on the web process); fail if anything died meanwhile."""
        pause(seconds, self.web.proc)
        self.assert_alive()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.http.get(self.web.url + path, timeout=kwargs.pop("timeout", 5), **kwargs)

    def status(self) -> dict[str, Any]:
        return self.get("/api/status").json()

    def fresh_everywhere(self) -> bool:
        """Every tracked account is served fully fresh over REST."""
        for index in self.accounts:
            response = self.get(f"/api/accounts/{index}")
            if response.status_code != 200 or not fully_fresh(response.json()):
                return False
        return True

    def start_worker(self) -> RunningWorker:
        self.worker = self.exits.enter_context(run_worker(self.worker_env, log_dir=self.log_dir))
        self.killed.discard("worker")
        return self.worker


@contextlib.contextmanager
def live_stack(log_dir: Path, store_env: Mapping[str, str], accounts: int = 2, tick_ms: int = 100,
               worker_overrides: Mapping[str, str] | None = None, web_overrides: Mapping[str, str] | None = None,
               sim_flags: Mapping[str, Any] | None = None, public_only: tuple[int, ...] = (),
               extra_worker_env: Callable[[RunningSimulator], Mapping[str, str]] | None = None,
               required: Callable[[Mapping[str, str]], list[int]] | None = None) -> Iterator[Stack]:
    """Simulator (unlimited tier) -> worker (fast tuning, CACHE_TTL=TTL_S) -> web, all real processes.
    Yields once every account (or those `required(worker_env)` names) has its core sections in the store and
    the web is healthy."""
    with contextlib.ExitStack() as exits:
        sim = exits.enter_context(run_simulator(tick_ms=tick_ms, tier="unlimited", **(sim_flags or {})))
        env = worker_env_for(sim, store_env, accounts=accounts, public_only=public_only, UPSTREAM_TIER="unlimited",
                             POLL_INTERVAL="0.3", ORDERS_INTERVAL="0.6", CACHE_TTL=str(TTL_S), **FAST_WORKER)
        if extra_worker_env is not None:
            env.update(extra_worker_env(sim))
        env.update(worker_overrides or {})
        worker = exits.enter_context(run_worker(env, log_dir=log_dir))
        store = worker.store()
        indexes = required(env) if required else [int(v) for k, v in env.items() if k.endswith("_Account_Index")]

        def ready() -> bool:
            snapshots = {a["account_index"]: a for a in store.accounts()}
            return all(i in snapshots and all(snapshots[i]["sections"][n]["data"] is not None
                                              for n in SECTIONS_WITH_DATA) for i in indexes)

        worker.wait_for(ready, timeout=30, message="every account's first data in the store")
        web_env = {k: v for k, v in store_env.items()}
        web_env.update(CACHE_TTL=str(TTL_S), RATE_LIMIT="1000000/minute", LOG_LEVEL="INFO")
        web_env.update(web_overrides or {})
        web = exits.enter_context(run_web(web_env))
        yield Stack(sim, worker, web, env, web_env, store.tracked(), exits, log_dir)
