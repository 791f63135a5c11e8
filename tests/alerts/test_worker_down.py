"""worker_down, watched by the web (app/alerts_watch.py): the real worker, two gunicorn web processes on one Redis,
one SQLite history database, and a real receiver that verifies the Standard Webhooks signature.

Kill the worker: both web processes notice and fire, the receiver gets exactly one signed message. A web restarted
during the same episode fires the same id again and nothing more arrives. The worker back, then killed again: a new
episode, a second message with another id. cooldown_s = 0, so nothing but the episode id keeps the count at one.
"""
from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from core.alerts.outbox import AlertOutbox
from core.history.db import HistoryDB
from tests.alerts.receiver import SECRET, Receiver, receiving
from tests.alerts.test_drills import migrated
from tests.fixtures.simulator import RunningSimulator
from tests.fixtures.web import WebServer, run_web
from tests.fixtures.worker import RunningWorker, run_worker, worker_env_for
from tests.waiting import wait_for

pytestmark = pytest.mark.drill
TOKEN = "worker-down-token-123456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
StartWorker = Callable[[dict[str, str], AlertOutbox], tuple[Any, RunningWorker]]
FIRED = re.compile(r"worker_down: no worker heartbeat for \d+ s: alert (alert_[0-9a-f]+) \(web pid (\d+)\)")


def rules(receiver: Receiver) -> str:
    return f"""
[destinations.ops]
webhook = "{receiver.url('/hook?token=HOOKSECRET')}"
secret = "{SECRET}"

[[rules]]
name = "down"
when = "worker_down"
seconds = 2
cooldown_s = 0
"""


@pytest.fixture
def start_worker() -> Iterator[StartWorker]:
    """`start(env, outbox)`: a worker started outside a `with` (these tests kill it mid-way), its heartbeat and its
    outbox seen. Whatever a failing test left running is killed at teardown, never leaked into the next test."""
    started: list[tuple[Any, RunningWorker]] = []

    def start(env: dict[str, str], outbox: AlertOutbox) -> tuple[Any, RunningWorker]:
        worker = run_worker(env)
        running: RunningWorker = worker.__enter__()
        started.append((worker, running))
        store = running.store()
        running.wait_for(lambda: store.status() is not None, 20, message="the worker's heartbeat")
        try:
            running.wait_for(lambda: migrated(outbox), 20, message="the outbox created by the worker")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nworker log:\n{running.log_text()[-3000:]}") from None
        return worker, running

    yield start
    for worker, running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(timeout=5)
        worker.__exit__(None, None, None)  # a no-op for one kill() already ended


def kill(worker: object, running: RunningWorker) -> None:
    running.proc.send_signal(signal.SIGKILL)
    running.proc.wait(timeout=5)
    worker.__exit__(None, None, None)  # type: ignore[attr-defined]


def fired(web: WebServer) -> list[str]:
    """The alert ids the web's processes fired, one per process and episode."""
    return [alert for alert, _pid in FIRED.findall(web.log())]


def firing_processes(web: WebServer) -> set[str]:
    return {pid for _alert, pid in FIRED.findall(web.log())}


def down_rows(outbox: AlertOutbox) -> list[dict]:
    return [r for r in outbox.log(100) if r["rule"] == "down"]


def test_one_message_per_episode_with_two_web_processes(simulator: RunningSimulator, redis_url: str,
                                                         tmp_path: Path, start_worker: StartWorker) -> None:
    simulator.control.pause()
    with receiving() as receiver:
        env = worker_env_for(simulator, {"REDIS_URL": redis_url}, accounts=1, UPSTREAM_TIER="unlimited",
                             DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}", ALERTS=rules(receiver),
                             ALERTS_TICK_S="0.2", API_TOKEN=TOKEN)
        outbox = AlertOutbox(HistoryDB(env["DATABASE_URL"]))
        worker, running = start_worker(env, outbox)
        first_pid = running.proc.pid
        with run_web(env, workers=2) as web:
            killed_at = time.monotonic()
            kill(worker, running)
            # Both processes notice and fire the same id; the receiver gets it once, signed.
            wait_for(lambda: len(firing_processes(web)) == 2, 20, "both web processes to fire worker_down")
            wait_for(lambda: [r["status"] for r in down_rows(outbox)] == ["delivered"], 20, "the delivery")
            first_ids = set(fired(web))
            assert len(first_ids) == 1 and len(fired(web)) == 2, web.log()[-3000:]
            [message] = receiver.requests
            assert message.verified and message.answered == 200
            # Timely: `seconds` (2) after the last heartbeat (at most ~1 s before the kill), plus a tick and the send.
            assert message.at - killed_at < 2 + 2.0
            body = message.json()
            assert (body["event"], body["rule"], body["account"]) == ("worker_down", "down", None)
            assert message.headers["webhook-id"] == body["id"] == next(iter(first_ids))
            assert body["values"]["pid"] == first_pid and body["values"]["silent_s"] > 2
            [row] = down_rows(outbox)
            assert (row["attempts"], row["last_code"], row["account_index"]) == (1, 200, -1)
            # Visible like the other rules: state, last fired, the delivery log.
            view = requests.get(web.url + "/api/alerts", headers=AUTH, timeout=10).json()
            [rule] = view["rules"]
            assert (rule["state"], rule["last_fired"]) == ("delivered", row["created_ms"])
            assert rule["worker_silent_s"] > 2
            assert [d["event_id"] for d in view["deliveries"]] == [body["id"]]
            status = requests.get(web.url + "/api/status", headers=AUTH, timeout=10).json()["alerts"]
            assert status["last_delivered"]["rule"] == "down" and status["backlog"] == 0
            assert "HOOKSECRET" not in web.log()

        # A web restarted during the same episode fires the same id: the outbox adds nothing, nothing is sent.
        with run_web(env, workers=1) as web:
            wait_for(lambda: fired(web), 20, "the restarted web to fire worker_down")
            assert set(fired(web)) == first_ids
            assert len(down_rows(outbox)) == 1 and len(receiver.requests) == 1

            # The worker back, then gone again: a new episode, one more message with another id.
            worker, running = start_worker(env, outbox)
            store = running.store()
            wait_for(lambda: requests.get(web.url + "/api/alerts", headers=AUTH, timeout=10)
                     .json()["rules"][0]["worker_silent_s"] is None, 20, "the web to see the heartbeat back",
                     ignore=(requests.RequestException,))
            assert store.head() > 0
            kill(worker, running)
            wait_for(lambda: len(receiver.requests) >= 2 and len(down_rows(outbox)) == 2
                     and all(r["status"] == "delivered" for r in down_rows(outbox)), 20, "the second episode")
            ids = [r.headers["webhook-id"] for r in receiver.requests]
            assert len(set(ids)) == 2 and ids[0] in first_ids and all(r.verified for r in receiver.requests)
            assert set(fired(web)) == set(ids)


def test_a_web_delivering_still_serves_and_a_worker_never_seen_is_down(tmp_path: Path) -> None:
    """No worker ever wrote a heartbeat: down since the web noticed. While its sender waits on a stalled receiver,
    the web (one gunicorn gevent process: a blocked hub would answer nothing) keeps answering at once."""
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    db = HistoryDB(url)
    db.migrate()  # the worker's job; no worker here
    outbox = AlertOutbox(db)
    with receiving() as receiver:
        receiver.stall = threading.Event()
        env = {"CACHE_DIR": str(tmp_path / "store"), "DATABASE_URL": url, "DOTENV_FILE": "",
               "Lighter_1_a_Account_Index": "7", "ALERTS": rules(receiver).replace("seconds = 2", "seconds = 1"),
               "ALERTS_TICK_S": "0.2"}
        with run_web(env) as web:
            session = requests.Session()
            slowest = 0.0

            def probe() -> bool:
                """/health answered (timed); True once the delivery reached the receiver."""
                nonlocal slowest
                started = time.monotonic()
                assert session.get(web.url + "/health", timeout=5).status_code == 200
                slowest = max(slowest, time.monotonic() - started)
                return receiver.arrivals == 1

            # Probed from the start: through the firing, the outbox write, the claim, the send...
            wait_for(probe, 20, "the web's worker_down delivery to reach the receiver")
            for _ in range(20):
                probe()  # ...and while the delivery waits on the stalled receiver
            assert slowest < 0.5 and receiver.requests == []
            receiver.stall.set()
            wait_for(lambda: [r["status"] for r in down_rows(outbox)] == ["delivered"], 20, "the delivery")
            [message] = receiver.requests
            assert message.verified and message.json()["values"]["pid"] is None
    db.close()


def test_a_standby_taking_over_in_time_is_no_worker_down(simulator: RunningSimulator, redis_url: str,
                                                         tmp_path: Path, start_worker: StartWorker) -> None:
    """kill -9 of the active worker with a hot standby: the standby takes the lease (within 5 s: docs/deploy.md)
    and beats before worker_down's `seconds` (8) pass. One message arrives, the standby's `standby_took_over`;
    no web process fires worker_down, and the standby (not a watcher) adds nothing of its own."""
    simulator.control.pause()
    with receiving() as receiver:
        alerts = rules(receiver).replace("seconds = 2", "seconds = 8") + \
            '\n[[rules]]\nname = "took"\nwhen = "standby_took_over"\n'
        env = worker_env_for(simulator, {"REDIS_URL": redis_url}, accounts=1, UPSTREAM_TIER="unlimited",
                             DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}", ALERTS=alerts,
                             ALERTS_TICK_S="0.2", API_TOKEN=TOKEN)
        outbox = AlertOutbox(HistoryDB(env["DATABASE_URL"]))
        worker, running = start_worker(env, outbox)
        store = running.store()
        with run_web(env, workers=2) as web, run_worker(env) as standby:
            standby.wait_for(lambda: (store.standby() or {}).get("pid") == standby.proc.pid, 20,
                             message="the second worker waiting as standby")
            killed_at = time.monotonic()
            kill(worker, running)
            standby.wait_for(lambda: (store.status() or {}).get("pid") == standby.proc.pid, 8,
                             message="the standby beating as the writer within worker_down's seconds")
            assert time.monotonic() - killed_at < 8
            wait_for(lambda: [r.json()["event"] for r in receiver.requests] == ["standby_took_over"], 20,
                     "the standby's standby_took_over message")
            # Both web processes have seen the heartbeat back (each reads it every 0.2 s; the takeover ended
            # within the rule's 8 s, so no check could have found 8 s of silence before or after).
            wait_for(lambda: all(requests.get(web.url + "/api/alerts", headers=AUTH, timeout=10)
                                 .json()["rules"][0]["worker_silent_s"] is None for _ in range(6)), 20,
                     "the web processes to see the new writer's heartbeat")
            assert fired(web) == [] and down_rows(outbox) == []
            assert [r["rule"] for r in outbox.log(10)] == ["took"] and receiver.requests[0].verified
