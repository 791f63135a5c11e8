"""Drill: `kill -9` the worker in the middle of a burst of fills, on SQLite and on PostgreSQL, then restart it:
every fill is stored exactly once (what the dead worker had queued is fetched again by the backfill)."""
from __future__ import annotations

import signal
from pathlib import Path

import pytest

from core.history.db import HistoryDB
from tests.fixtures.simulator import RunningSimulator
from tests.fixtures.worker import run_worker
from tests.history.conftest import database_url
from tests.history.test_worker_history import MARKET, env_for, fills

pytestmark = pytest.mark.drill
BURST = 60
KILL_AT = 25


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_kill_9_during_a_burst_of_fills(kind: str, simulator: RunningSimulator, tmp_path: Path,
                                        request: pytest.FixtureRequest) -> None:
    simulator.control.pause()  # only the burst fills
    url = database_url(kind, tmp_path, request)
    env = env_for(simulator, tmp_path, url)
    account = int(env["Lighter_1_1_Account_Index"])
    db = HistoryDB(url)
    with run_worker(env) as worker:
        store = worker.store()
        worker.wait_for(lambda: ((store.status() or {}).get("history") or {}).get("healthy"), 20,
                        message="history writing")
        for n in range(BURST):
            simulator.control.trade(account, MARKET, "0.01", is_ask=bool(n % 2))
            if n == KILL_AT:
                worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=5)
        assert worker.proc.returncode == -signal.SIGKILL
    before_restart = len(fills(db, account))
    assert before_restart < BURST  # the kill really cut the burst short
    with run_worker(env) as worker:
        worker.wait_for(lambda: len(fills(db, account)) >= BURST, 30, message=f"{BURST} fills after the restart")
        worker.run_for(1.5)  # the live feed and the periodic work add nothing more
    ids = sorted(f["trade_id"] for f in fills(db, account))
    assert ids == list(range(ids[0], ids[0] + BURST))  # the simulator numbers its trades consecutively
