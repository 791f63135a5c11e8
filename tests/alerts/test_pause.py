"""The writer lease's gate: a paused AlertWorker evaluates and queues nothing but keeps its baseline current, so a
resume reports what happens next, not what happened while another worker was active."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from core.alerts.config import AlertSettings
from core.alerts.rules import parse
from core.history.db import HistoryDB
from tests.history.snapshots import snap, trade
from worker.alerts import AlertWorker

RULES = """
[destinations.ops]
webhook = "https://hooks.example/x"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
[[rules]]
name = "fills"
when = "fill"
"""


def test_paused_evaluates_nothing_and_resumes_from_now(tmp_path: Path) -> None:
    errors: list[Any] = []
    rt = SimpleNamespace(accounts={}, egresses=[], record_error=lambda *a: errors.append(a), pid=1)
    db = HistoryDB(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    worker = AlertWorker(rt, AlertSettings(rules=parse(RULES, "ALERTS"), group_s=0), db)  # type: ignore[arg-type]
    worker.evaluator.seed([snap(trades=[])])
    worker.pause()
    worker.offer([snap(trades=[trade(1, 10)])])          # a fill while the other worker is active
    assert worker.queued == [] and worker.evaluator.groups == {}
    worker.resume()
    assert worker.resumed.is_set()
    worker.offer([snap(trades=[trade(1, 10), trade(2, 20)])])
    [alert] = worker.queued
    assert [e["trade_id"] for e in alert.values["events"]] == [2]  # only the fill after the resume
    db.close()


def test_taking_over_from_another_worker_is_an_alert(tmp_path: Path) -> None:
    rules = RULES + '[[rules]]\nname = "takeover"\nwhen = "standby_took_over"\ncooldown_s = 0\n'
    rt = SimpleNamespace(accounts={}, egresses=[], record_error=lambda *a: None, pid=42)
    db = HistoryDB(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    worker = AlertWorker(rt, AlertSettings(rules=parse(rules, "ALERTS")), db)  # type: ignore[arg-type]
    worker.pause()
    worker.resume()  # an ordinary start or a resume of our own lease: nothing
    assert worker.queued == []
    worker.pause()
    worker.resume(took_over=True)
    [alert] = worker.queued
    assert (alert.rule, alert.when, alert.account, alert.values["pid"]) == ("takeover", "standby_took_over", -1, 42)
    worker.pause()
    worker.resume(took_over=True)  # each takeover is news (cooldown_s = 0 here)
    assert len(worker.queued) == 2
    db.close()


def test_alerts_held_in_memory_are_bounded(tmp_path: Path) -> None:
    from core.alerts.evaluate import Alert
    from worker.alerts import MAX_QUEUED

    rt = SimpleNamespace(accounts={}, egresses=[], record_error=lambda *a: None, pid=1)
    db = HistoryDB(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    worker = AlertWorker(rt, AlertSettings(rules=parse(RULES, "ALERTS")), db)  # type: ignore[arg-type]
    alerts = [Alert(f"alert_{i}", "fills", "fill", 7, i, {}, ("ops",)) for i in range(MAX_QUEUED + 5)]
    worker._queue(alerts)
    assert len(worker.queued) == MAX_QUEUED and worker.dropped == 5
    assert worker.queued[0].id == "alert_5"  # the oldest went
    db.close()
