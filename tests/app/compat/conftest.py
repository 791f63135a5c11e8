"""One real stack for the package: simulator -> worker -> store -> web (gunicorn, API_TOKEN set), shared by tests."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from core.store import Store
from tests import waiting
from tests.fixtures.simulator import RunningSimulator, run_simulator
from tests.fixtures.web import WebServer, run_web
from tests.fixtures.worker import run_worker, worker_env_for

TOKEN = "compat-test-token"


@dataclass
class Stack:
    sim: RunningSimulator
    web: WebServer
    store: Store
    accounts: list[dict]       # the simulator's accounts; the first has a key, the second is public-only

    @property
    def stream_url(self) -> str:
        return f"ws://127.0.0.1:{self.web.port}/stream"

    def ours(self, index: int) -> dict:
        """The account as our own API serves it (the reference the Lighter routes must agree with)."""
        response = requests.get(f"{self.web.url}/api/accounts/{index}", timeout=5,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        response.raise_for_status()
        return response.json()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition",
             idle: Callable[[float], Any] | None = None) -> Any:
    """Re-check `predicate` until truthy or the deadline (tests/waiting.py). `idle(t)` blocks up to t seconds
    between checks on something real (a queue, a socket); by default a deadline-bound wait."""
    return waiting.wait_for(predicate, timeout, message, interval=0.1, idle=idle)


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    store_env = {"CACHE_DIR": str(tmp_path_factory.mktemp("compat") / "store")}
    with run_simulator(tick_ms=250, accounts=3) as sim:
        env = worker_env_for(sim, store_env, accounts=2, public_only=(1,), UPSTREAM_TIER="unlimited",
                             POLL_INTERVAL="0.3", ORDERS_INTERVAL="0.5")
        with run_worker(env) as worker:
            store = worker.store()
            indexes = [a["account_index"] for a in sim.control.accounts()[:2]]
            worker.wait_for(lambda: all((store.account(i) or {}).get("sections", {}).get("summary", {}).get("data")
                                        for i in indexes), timeout=20, message="both accounts in the store")
            web_env = {**store_env, "API_TOKEN": TOKEN, "RATE_LIMIT": "10000/minute"}
            with run_web(web_env) as web:
                yield Stack(sim, web, store, sim.control.accounts()[:2])


def json_of(message: str | bytes) -> dict:
    return json.loads(message)
