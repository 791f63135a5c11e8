"""The worker against the real simulator (HTTP + WS): snapshots match truth, WS updates arrive, clean stop."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.snapshot import with_freshness
from core.store import Store
from tests.fixtures.simulator import RunningSimulator, run_simulator
from tests.fixtures.worker import RunningWorker, run_worker, worker_env_for
from tests.worker.helpers import assert_no_secrets, has_data, mismatches

ALL = ("summary", "positions", "orders", "stats")
TTL = "3"  # CACHE_TTL for the freshness checks (shorter than the default 5 s to keep the test quick)


@pytest.fixture(params=["file", "redis"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {"CACHE_DIR": str(tmp_path / "store")}


def test_snapshots_match_simulator_truth(store_env: dict[str, str], tmp_path: Path) -> None:
    with run_simulator(tick_ms=100, tier="unlimited") as sim:
        accounts = [a["account_index"] for a in sim.control.accounts()]
        env = worker_env_for(sim, store_env, UPSTREAM_TIER="unlimited")
        with run_worker(env, log_dir=tmp_path) as worker:
            store = worker.store()
            worker.wait_for(lambda: all(has_data(store, i, ALL) for i in accounts), 15, message="first data")
            assert store.tracked() == accounts
            sim.control.pause()  # freeze the market so truth holds still
            for index in accounts:
                worker.wait_for(lambda: not mismatches(store, sim.control.state(index), index), 5,
                                message=f"account {index} to match truth")
            status = worker.wait_for(lambda: (s := store.status()) and s["upstream"]["simulator"] and s, 3,
                                     message="status naming the simulator")
            assert status["schema"] == 1 and status["mode"] == "ws" and status["upstream"]["simulator"] is True
            assert status["egresses"][0]["ws"]["state"] == "connected"
            assert time.time() * 1000 - status["heartbeat_at"] < 3000
            assert not status["intervals"]["stretched"]
        assert worker.exit_code == 0
    assert_no_secrets(worker.log_text(), [env[k] for k in env if k.endswith("_PRIVATE")])


@pytest.mark.slow  # standard-tier windows and freshness ageing (~9 s)
def test_ws_update_reaches_store_and_public_only_account(tmp_path: Path) -> None:
    # Standard tier: REST is stretched to several seconds, so a prompt change can only come from the WS.
    with run_simulator(tick_ms=100) as sim:
        keys = [a["private_key"] for a in sim.control.accounts()]
        accounts = [a["account_index"] for a in sim.control.accounts()]
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, public_only=(2,), CACHE_TTL=TTL)
        with run_worker(env, log_dir=tmp_path) as worker:
            store = worker.store()
            worker.wait_for(lambda: all(has_data(store, i, ("positions", "stats")) for i in accounts), 15,
                            message="first data")
            status = store.status()
            assert status["intervals"]["stretched"] and status["intervals"]["poll"]["effective"] > 3
            sim.control.pause()
            index = accounts[0]
            worker.wait_for(lambda: store.account(index)["sections"]["positions"]["data"]
                            == sim.control.state(index)["account"]["positions"], 5, message="settled")
            before = store.head()
            sim.control.trade(index, 0, "0.0100", False)
            truth = sim.control.state(index)["account"]["positions"]
            started = time.monotonic()
            worker.wait_for(lambda: store.account(index)["sections"]["positions"]["data"] == truth, 2,
                            interval=0.002, message="the WS update in the store")
            elapsed = time.monotonic() - started
            snapshot = store.account(index)
            assert snapshot["sections"]["positions"]["source"] == "ws" and snapshot["seq"] > before
            assert elapsed < 2
            public = store.account(accounts[2])
            assert public["public_only"] and public["sections"]["orders"]["data"] is None
            assert status["accounts"][str(accounts[2])]["public_only"] is True
            _quiet_sections_stay_fresh_then_age_when_silent(sim, worker, store, index)
        assert worker.exit_code == 0
    log = worker.log_text()
    assert "public-only" in log and str(accounts[2]) in log
    assert_no_secrets(log, keys)


def _stale(store: Store, index: int) -> set[str]:
    sections = with_freshness(store.account(index), ttl_s=float(TTL))["sections"]
    return {name for name in ("summary", "positions", "orders", "stats") if sections[name]["stale"]}


def _quiet_sections_stay_fresh_then_age_when_silent(sim: RunningSimulator, worker: RunningWorker, store: Store,
                                                    index: int) -> None:
    """Market frozen, REST stretched to ~8 s: only the healthy socket's pongs can keep `as_of` young."""
    worker.run_for(float(TTL) + 1)  # longer than CACHE_TTL with nothing changing upstream
    assert _stale(store, index) == set()
    fault = sim.control.add_fault("ws_silence", ws="*")
    worker.wait_for(lambda: "stats" in _stale(store, index), 10, message="WS-only stats to age into stale")
    assert store.account(index)["sections"]["stats"]["data"] is not None  # kept, only flagged by age
    sim.control.remove_fault(fault)
    worker.wait_for(lambda: not _stale(store, index), 10, message="fresh again after the silence")
