"""The worker against the real simulator: account_all_trades feeds the trades and volume sections, and every
snapshot carries the account's configured name and group."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for


def test_fills_and_volumes_from_account_all_trades(tmp_path: Path) -> None:
    with run_simulator(tick_ms=100, tier="unlimited") as sim:
        sim.control.pause()  # only our trade fills: the volume moves by exactly its value
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, accounts=1, group=3,
                             UPSTREAM_TIER="unlimited")
        index = sim.control.accounts()[0]["account_index"]
        with run_worker(env, log_dir=tmp_path) as worker:
            store = worker.store()

            def volume() -> dict | None:
                snapshot = store.account(index)
                return snapshot and snapshot["sections"]["volume"]["data"]

            before = worker.wait_for(volume, 15, message="the volume section from the subscribe snapshot")
            snapshot = store.account(index)
            assert (snapshot["name"], snapshot["group"]) == ("1", 3)  # Lighter_3_1_*: {ID} "1", group 3
            assert snapshot["sections"]["volume"]["source"] == "ws"
            sim.control.trade(index, 0, "0.5", is_ask=False)
            after = worker.wait_for(lambda: (v := volume()) and v != before and v, 10, message="volume moved")
            trades = store.account(index)["sections"]["trades"]["data"]
            newest = trades[0]
            assert newest["size"] == "0.5000" and newest["bid_account_id"] == index
            usd = Decimal(newest["size"]) * Decimal(newest["price"])
            for key in ("daily_volume", "weekly_volume", "monthly_volume", "total_volume"):
                assert Decimal(str(after[key])) - Decimal(str(before[key])) == usd, key
            # One trade, two channels (account_all and account_all_trades): stored once.
            assert [t["trade_id"] for t in trades].count(newest["trade_id"]) == 1
