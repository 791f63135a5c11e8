"""The whole service on 127.0.0.1: simulator → worker → store → web, for the freshness and upstream parts."""
from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests

from bench import procs


@dataclass
class Stack:
    sim_url: str
    web_url: str
    ws_url: str
    accounts: list[int]
    web: procs.Server
    worker: procs.Server
    simulator: procs.Server
    session: requests.Session

    def sim(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = self.session.request(method, f"{self.sim_url}/_sim/{path}", json=body, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def upstream_counts(self) -> tuple[int, int]:
        """(REST requests, 429s) the simulator has counted so far, over every egress."""
        c = self.sim("GET", "counters")
        return (sum(n for paths in c["requests"].values() for n in paths.values()),
                sum(c["rate_limited"].values()))


def _wait_tracked(session: requests.Session, web_url: str, accounts: list[int], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            if all(session.get(f"{web_url}/api/accounts/{a}", timeout=2).status_code == 200 for a in accounts):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not publish accounts {accounts} within {deadline_s}s")


@contextlib.contextmanager
def running(n_accounts: int = 3, tier: str = "premium", store: str = "redis",
            sim_args: list[str] | None = None) -> Iterator[Stack]:
    """Start simulator, worker and web (private keys from the simulator, so orders are tracked too)."""
    stops: list = []
    session = requests.Session()
    with tempfile.TemporaryDirectory(prefix="lb-bench-") as tmp:
        try:
            sim, sim_url = procs.simulator(n_accounts, tier, sim_args)
            stops.append(sim)
            accounts = session.get(f"{sim_url}/_sim/accounts", timeout=10).json()["accounts"]
            env, redis = procs.store_env(store, tmp)
            if redis:
                stops.append(redis)
            extra = {"LIGHTER_BASE_URL": sim_url, "LIGHTER_WS_URL": sim_url.replace("http", "ws", 1) + "/stream",
                     "UPSTREAM_TIER": tier, "DOTENV_FILE": ""}
            for i, acct in enumerate(accounts):
                extra[f"Lighter_1_B{i}_API_KEY_Index"] = str(acct["api_key_index"])
                extra[f"Lighter_1_B{i}_PRIVATE"] = acct["private_key"]
            indexes = [a["account_index"] for a in accounts]
            env = procs.web_env(env, indexes, extra)
            worker = procs.worker(env)
            stops.insert(0, worker)
            web, port = procs.gunicorn("wsgi:app", env)
            stops.insert(0, web)
            web_url = f"http://127.0.0.1:{port}"
            _wait_tracked(session, web_url, indexes, 30)
            yield Stack(sim_url, web_url, f"ws://127.0.0.1:{port}/ws", indexes, web, worker, sim, session)
        finally:
            for item in stops:
                item.stop()
