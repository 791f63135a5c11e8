"""Drills: the real worker, the simulator, a real receiver that verifies signatures.

- the receiver answers 500 for a while, then 200: every alert delivered exactly once, in order per rule;
- the receiver stalls past ALERTS_TIMEOUT_S: the attempt times out and is retried; the receiver sees each id
  (a timed-out attempt may still arrive: it carries the same webhook-id, which is what receivers deduplicate on);
- kill -9 with alerts in the outbox: delivered after the restart.
Times are shortened through the settings (ALERTS_RETRY_*, ALERTS_TIMEOUT_S).
"""
from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from core.alerts.evaluate import margin_usage
from core.alerts.outbox import AlertOutbox
from core.history.db import HistoryDB
from tests.alerts.receiver import SECRET, Receiver, receiving
from tests.fixtures.simulator import RunningSimulator
from tests.fixtures.worker import RunningWorker, run_worker, worker_env_for

pytestmark = pytest.mark.drill
MARKET = 0
TRADES = 5


def env_for(sim: RunningSimulator, tmp_path: Path, receiver: Receiver, **overrides: str) -> dict[str, str]:
    rules = f"""
[destinations.ops]
webhook = "{receiver.url('/hook?token=HOOKSECRET')}"
secret = "{SECRET}"

[[rules]]
name = "fills"
when = "fill"
"""
    settings = {"UPSTREAM_TIER": "unlimited", "DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}",
                "ALERTS": rules, "ALERTS_GROUP_S": "0", "ALERTS_RETRY_BASE_S": "0.1", "ALERTS_RETRY_CAP_S": "0.4",
                **overrides}
    return worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, accounts=1, **settings)


def ready(worker: RunningWorker, account: int, outbox: AlertOutbox) -> None:
    worker.wait_for(lambda: (worker.store().account(account) or {}).get("sections", {}).get("trades", {})
                    .get("data") is not None, 20, message="trades section known")
    worker.wait_for(lambda: migrated(outbox), 20, message="the database migrated by the worker")


def migrated(outbox: AlertOutbox) -> bool:
    try:
        outbox.pending_count()
        return True
    except OperationalError:
        return False


def trade_one_by_one(sim: RunningSimulator, worker: RunningWorker, account: int, outbox: AlertOutbox) -> None:
    """One trade at a time, each waiting for its own alert row: one alert per fill, in a known order."""
    for n in range(TRADES):
        sim.control.trade(account, MARKET, "0.01", is_ask=bool(n % 2))
        worker.wait_for(lambda n=n: len(outbox.log(100)) >= n + 1, 20, message=f"alert {n + 1} in the outbox")


def delivered_once_in_order(receiver: Receiver, outbox: AlertOutbox) -> None:
    rows = sorted(outbox.log(100), key=lambda r: r["id"])
    assert [r["status"] for r in rows] == ["delivered"] * TRADES
    ok = receiver.delivered()
    ids = [r.headers["webhook-id"] for r in ok]
    assert ids == [r["event_id"] for r in rows]  # each once, in the order they fired
    assert all(r.verified for r in ok)
    trade_ids = [r.json()["values"]["events"][0]["trade_id"] for r in ok]
    assert trade_ids == sorted(trade_ids)


def test_receiver_fails_then_recovers(simulator: RunningSimulator, tmp_path: Path) -> None:
    simulator.control.pause()
    with receiving() as receiver:
        failing = threading.Event()
        failing.set()
        receiver.answer = lambda: 500 if failing.is_set() else 200
        env = env_for(simulator, tmp_path, receiver)
        account = int(env["Lighter_1_1_Account_Index"])
        outbox = AlertOutbox(HistoryDB(env["DATABASE_URL"]))
        with run_worker(env) as worker:
            ready(worker, account, outbox)
            trade_one_by_one(simulator, worker, account, outbox)
            worker.wait_for(lambda: sum(1 for r in receiver.requests if r.answered == 500) >= 3, 20,
                            message="the receiver refused several attempts")
            failing.clear()
            worker.wait_for(lambda: outbox.pending_count() == 0, 30, message="outbox drained")
            log = worker.log_text()
        delivered_once_in_order(receiver, outbox)
        assert max(r["attempts"] for r in outbox.log(100)) >= 2
        assert "HOOKSECRET" not in log


def test_receiver_times_out(simulator: RunningSimulator, tmp_path: Path) -> None:
    simulator.control.pause()
    with receiving() as receiver:
        receiver.stall = threading.Event()
        env = env_for(simulator, tmp_path, receiver, ALERTS_TIMEOUT_S="0.3")
        account = int(env["Lighter_1_1_Account_Index"])
        outbox = AlertOutbox(HistoryDB(env["DATABASE_URL"]))
        with run_worker(env) as worker:
            ready(worker, account, outbox)
            simulator.control.trade(account, MARKET, "0.01", is_ask=False)
            worker.wait_for(lambda: any(r["attempts"] >= 2 and r["last_error"] == "ReadTimeout"
                                        for r in outbox.log(10)), 20, message="attempts timed out and retried")
            receiver.stall.set()
            worker.wait_for(lambda: outbox.pending_count() == 0, 30, message="delivered once the receiver answers")
        [row] = outbox.log(10)
        assert row["status"] == "delivered"
        assert {r.headers["webhook-id"] for r in receiver.delivered()} == {row["event_id"]}


def test_kill_9_with_alerts_in_the_outbox(simulator: RunningSimulator, tmp_path: Path) -> None:
    simulator.control.pause()
    with receiving() as receiver:
        receiver.answer = lambda: 503
        # A kill in mid-attempt leaves the oldest row claimed for 2 x ALERTS_TIMEOUT_S + 10 s: 30 s by default, as
        # long as the wait after the restart, with only the restart's start-up to spare. 2 s makes it 14 s.
        env = env_for(simulator, tmp_path, receiver, ALERTS_TIMEOUT_S="2")
        account = int(env["Lighter_1_1_Account_Index"])
        outbox = AlertOutbox(HistoryDB(env["DATABASE_URL"]))
        with run_worker(env) as worker:
            ready(worker, account, outbox)
            trade_one_by_one(simulator, worker, account, outbox)
            worker.proc.send_signal(signal.SIGKILL)
            worker.proc.wait(timeout=5)
            assert worker.proc.returncode == -signal.SIGKILL
        assert outbox.pending_count() == TRADES and receiver.delivered() == []
        receiver.answer = lambda: 200
        with run_worker(env) as worker:
            worker.wait_for(lambda: outbox.pending_count() == 0, 30, message="delivered after the restart")
            worker.run_for(1.0)  # nothing more: the restart's baseline is not news
        delivered_once_in_order(receiver, outbox)


def near(value: float | None, target: float, other: float) -> bool:
    """Closer to `target` than to `other` (fees move the equity a little on every trade)."""
    return value is not None and abs(value - target) < abs(value - other)


def test_a_flapping_margin_condition_sends_one_message_per_cooldown(simulator: RunningSimulator,
                                                                    tmp_path: Path) -> None:
    """Buy, sell, buy... moves margin usage across the threshold and back past its clear level every 200 ms for
    6 s; with a 2.5 s cooldown that is at most 3 messages (one at the start, then one per cooldown), not 30."""
    simulator.control.pause()
    with receiving() as receiver:
        base = env_for(simulator, tmp_path, receiver, ALERTS="")
        account = int(base["Lighter_1_1_Account_Index"])
        with run_worker(base) as worker:  # learn the usage before and after one trade, with no rules
            store = worker.store()
            usage = lambda: margin_usage(store.account(account) or {})  # type: ignore[arg-type]  # noqa: E731
            before = worker.wait_for(usage, 20, message="margin usage known")
            simulator.control.trade(account, MARKET, "0.5", is_ask=False)
            after = worker.wait_for(lambda: usage() if usage() != before else None, 20, message="usage moved")
            simulator.control.trade(account, MARKET, "0.5", is_ask=True)
            worker.wait_for(lambda: near(usage(), before, after), 20, message="usage back")
        low, high = sorted((before, after))
        rules = (f'[destinations.ops]\nwebhook = "{receiver.url()}"\nsecret = "{SECRET}"\n'
                 f'[[rules]]\nname = "margin"\nwhen = "margin_usage_above"\npercent = {(low + high) / 2}\n'
                 f'clear_below = {low + (high - low) / 4}\ncooldown_s = 2.5\n')
        env = {**base, "ALERTS": rules, "CACHE_DIR": str(tmp_path / "store2")}
        outbox = AlertOutbox(HistoryDB(env["DATABASE_URL"]))
        with run_worker(env) as worker:
            ready(worker, account, outbox)
            store = worker.store()
            started = time.monotonic()
            flips = 0
            while time.monotonic() - started < 6.0:
                simulator.control.trade(account, MARKET, "0.5", is_ask=flips % 2 == 1)  # buy, sell, buy...
                flips += 1
                target, other = (after, before) if flips % 2 == 1 else (before, after)
                worker.wait_for(lambda t=target, o=other: near(usage(), t, o), 10, message="usage flipped")
            worker.wait_for(lambda: outbox.pending_count() == 0 and receiver.delivered(), 10, message="delivered")
            worker.run_for(0.5)
        messages = receiver.delivered()
        assert flips >= 10  # it really flapped
        assert 1 <= len(messages) <= 3, [m.json()["values"] for m in messages]
        assert len({m.headers["webhook-id"] for m in messages}) == len(messages)
