"""History end to end: the real worker against the simulator, writing a real database.

- fills made while the worker was stopped are fetched from /api/v1/trades at start, and stored exactly once;
- fills made while it runs arrive live (WebSocket) and are stored once, beside position and order events and
  equity samples;
- the database unreachable: the live store keeps updating, status shows the backlog.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from core.history.db import HistoryDB
from tests.fixtures.simulator import RunningSimulator
from tests.fixtures.worker import run_worker, worker_env_for

MARKET = 0


def env_for(sim: RunningSimulator, tmp_path: Path, database_url: str, **overrides: str) -> dict[str, str]:
    return worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, accounts=1, UPSTREAM_TIER="unlimited",
                          DATABASE_URL=database_url, HISTORY_FLUSH_S="0.05", HISTORY_SAMPLE_S="0.5",
                          HISTORY_STATS_S="0.5", **overrides)


def fills(db: HistoryDB, account: int) -> list[dict[str, Any]]:
    """The account's stored fills; none while the worker has not created the schema yet."""
    try:
        return db.page("fills", account, 0, 2**62, 1000, None)
    except OperationalError:
        return []


def trade(sim: RunningSimulator, account: int, n: int) -> None:
    for i in range(n):
        sim.control.trade(account, MARKET, "0.01", is_ask=bool(i % 2))


def test_fills_made_while_stopped_are_backfilled_exactly_once(simulator: RunningSimulator, tmp_path: Path) -> None:
    simulator.control.pause()  # only our trades fill
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    env = env_for(simulator, tmp_path, url, WORKER_WS="0")  # REST only: fills can only come from the backfill
    account = int(env["Lighter_1_1_Account_Index"])
    db = HistoryDB(url)
    trade(simulator, account, 3)
    with run_worker(env) as worker:
        worker.wait_for(lambda: len(fills(db, account)) == 3, 20, message="3 fills backfilled at start")
    trade(simulator, account, 4)
    with run_worker(env) as worker:
        worker.wait_for(lambda: len(fills(db, account)) == 7, 20, message="7 fills after the restart")
        worker.wait_for(lambda: "history backfill: 7 fills fetched" in worker.log_text(), 10,
                        message="the overlap refetched (and skipped) the stored fills")
    stored = fills(db, account)
    assert len({f["trade_id"] for f in stored}) == 7 and {f["source"] for f in stored} == {"backfill"}
    sides = [f["side"] for f in sorted(stored, key=lambda f: f["trade_id"])]
    assert sides == ["buy", "sell", "buy", "buy", "sell", "buy", "sell"]


@pytest.mark.slow
def test_live_fills_events_and_samples(simulator: RunningSimulator, tmp_path: Path) -> None:
    simulator.control.pause()
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    env = env_for(simulator, tmp_path, url)
    account = int(env["Lighter_1_1_Account_Index"])
    db = HistoryDB(url)
    with run_worker(env) as worker:
        store = worker.store()
        worker.wait_for(lambda: (store.status() or {}).get("history", {}).get("healthy"), 20,
                        message="history healthy in the worker status")
        for _ in range(2):  # both buys: the position moves whether or not the sink writes them apart
            simulator.control.trade(account, MARKET, "0.01", is_ask=False)
        worker.wait_for(lambda: len(fills(db, account)) == 2, 20, message="2 live fills")
        assert {f["source"] for f in fills(db, account)} == {"ws"}
        worker.wait_for(lambda: db.page("position_events", account, 0, 2**62, 10, None), 10,
                        message="position events from the trades")
        worker.wait_for(lambda: len(db.equity_buckets(account, 0, 2**62, 1000)) >= 2, 10, message="samples")
        # The living market places, fills and cancels resting orders: their lifecycle is recorded.
        simulator.control.resume()
        kinds = lambda: {e["kind"] for e in db.page("order_events", account, 0, 2**62, 1000, None)}  # noqa: E731
        worker.wait_for(lambda: {"placed"} < kinds() and kinds() & {"filled", "cancelled", "partly_filled"}, 30,
                        message="order lifecycle events")
        # The counts are refreshed every HISTORY_STATS_S: wait for a refresh that saw the samples already stored.
        counted = lambda h: (h.get("rows") or {}).get("equity_samples", 0) >= 1 \
            and (h.get("rows") or {}).get("fills", 0) >= 2 and h  # noqa: E731 (the market may add fills since)
        history = worker.wait_for(lambda: counted((store.status() or {}).get("history") or {}), 10,
                                  message="the stored fills and samples counted in the status")
        assert history["size_bytes"] > 0 and history["backfilled_at_ms"] is not None


@pytest.mark.slow
def test_an_unreachable_database_leaves_the_live_feed_alone(simulator: RunningSimulator, tmp_path: Path) -> None:
    from tests.fixtures.procs import free_port

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"  # nothing listens there
    env = env_for(simulator, tmp_path, url)
    account = int(env["Lighter_1_1_Account_Index"])
    with run_worker(env) as worker:
        store = worker.store()
        first = worker.wait_for(lambda: (store.account(account) or {}).get("seq"), 20, message="account written")
        worker.wait_for(lambda: ((store.account(account) or {}).get("seq") or 0) > first + 5, 20,
                        message="the account keeps updating")
        history = worker.wait_for(lambda: ((store.status() or {}).get("history") or {}).get("backlog_rows"), 20,
                                  message="a backlog in the status")
        assert history > 0
        record = (store.status() or {})["history"]
        assert record["healthy"] is False and record["last_error"] and record["dropped_rows"] == 0
        assert "nobody@" not in str(store.status())
