"""Redis goes away under a running worker: it keeps its data in memory, retries, and repopulates the store."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.redis import RedisServer
from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for
from tests.worker.helpers import has_data

pytestmark = pytest.mark.slow  # a Redis restart under a live worker (~5 s)

def test_worker_survives_redis_restart(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> None:
    with run_simulator(tick_ms=100, tier="unlimited") as sim:
        accounts = [a["account_index"] for a in sim.control.accounts()]
        env = worker_env_for(sim, {"REDIS_URL": redis_url}, UPSTREAM_TIER="unlimited")
        with run_worker(env, log_dir=tmp_path) as worker:
            store = worker.store()
            worker.wait_for(lambda: all(has_data(store, i, ("summary", "positions")) for i in accounts), 15,
                            message="first data")
            head = store.head()
            redis_server.stop()
            worker.run_for(2.5)  # writes and heartbeats fail meanwhile; the worker must not die
            redis_server.start()  # a fresh, empty server on the same port (no persistence)
            worker.wait_for(lambda: store.tracked() == accounts and all(
                has_data(store, i, ("summary", "positions", "orders", "stats")) for i in accounts), 15,
                message="store repopulated")
            assert store.head() > head  # seq continues from where it was, never backwards
            status = worker.wait_for(store.status, 5, message="heartbeat back")
            assert any(e["where"] == "store" for e in status["errors"])
        assert worker.exit_code == 0
    assert "store write failed" in worker.log_text()
