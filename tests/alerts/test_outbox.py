"""The outbox table on SQLite and PostgreSQL (migration 0002): duplicates skipped by (event_id, destination), the
oldest pending row first per destination, marks, the log and last fired per rule."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.alerts.deliver import retry_delay
from core.alerts.outbox import AlertOutbox
from core.history.db import HistoryDB
from tests.history.conftest import database_url


@pytest.fixture(params=["sqlite", "postgresql"])
def outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AlertOutbox]:
    db = HistoryDB(database_url(request.param, tmp_path, request))
    db.migrate()
    yield AlertOutbox(db)
    db.close()


def row(event: str, destination: str, rule: str = "r", at: int = 1) -> dict[str, Any]:
    return {"event_id": event, "destination": destination, "rule": rule, "account_index": 7, "created_ms": at,
            "body": "{}", "status": "pending", "attempts": 0, "next_at_ms": at}


def test_outbox(outbox: AlertOutbox) -> None:
    outbox.add([row("a", "ops", at=1), row("a", "chat", at=1), row("b", "ops", "q", at=2)])
    outbox.add([row("a", "ops", at=1)])  # the same alert again (a restart re-evaluating it): skipped
    assert outbox.pending_count() == 3
    head = outbox.head("ops")
    assert head is not None and head["event_id"] == "a"
    outbox.mark(head["id"], status="delivered", attempts=1, last_code=200, delivered_ms=5)
    nxt = outbox.head("ops")
    assert nxt is not None and nxt["event_id"] == "b"
    assert outbox.pending_count() == 2
    assert outbox.last_fired() == {"r": 1, "q": 2}
    log = outbox.log(10)
    assert [r["event_id"] for r in log] == ["b", "a", "a"] and "body" not in log[0]
    assert all(type(key) is str for key in log[0])  # plain str keys: orjson serialises them
    assert outbox.prune(before_ms=10) == 1  # the delivered row; pending ones stay however old
    assert outbox.pending_count() == 2 and len(outbox.log(10)) == 2


def test_retry_schedule_is_capped_exponential_with_jitter() -> None:
    import random

    rng = random.Random(1)
    delays = [retry_delay(n, 1.0, 300.0, rng) for n in range(1, 15)]
    for n, delay in enumerate(delays, start=1):
        full = min(300.0, 2.0 ** (n - 1))
        assert 0.5 * full <= delay <= full
    assert max(delays) <= 300.0 and len(set(delays)) == len(delays)  # jittered


def test_one_claim_wins_per_attempt(outbox: AlertOutbox) -> None:
    """Senders in several processes read the same head row; the compare-and-set on next_at_ms lets one send it."""
    outbox.add([row("a", "ops", at=1)])
    head = outbox.head("ops")
    assert head is not None
    assert outbox.claim(head["id"], head["next_at_ms"], until_ms=100) is True
    assert outbox.claim(head["id"], head["next_at_ms"], until_ms=200) is False  # another sender read the same row
    claimed = outbox.head("ops")
    assert claimed is not None and claimed["next_at_ms"] == 100  # later readers wait for the claim to run out
    assert outbox.claim(head["id"], 100, until_ms=300) is True    # ...then may take it (the claimer died)
    outbox.mark(head["id"], status="delivered", attempts=1)
    assert outbox.claim(head["id"], 300, until_ms=400) is False   # delivered rows are nobody's


def test_rule_filter_states_and_summary(outbox: AlertOutbox) -> None:
    outbox.add([row("a", "ops", "fills", at=1), row("b", "ops", "down", at=2), row("c", "ops", "fills", at=3),
                row("d", "chat", "down", at=4)])
    assert outbox.summary() == {"backlog": 4, "retrying": 0, "failed": 0, "last_delivered": None,
                                "last_failure": None}
    head = outbox.head("ops", rules={"down"})
    assert head is not None and head["event_id"] == "b"  # the worker_down watcher's rows only
    outbox.mark(head["id"], status="delivered", attempts=2, last_code=200, delivered_ms=9)
    first = outbox.head("ops")
    assert first is not None and first["event_id"] == "a"
    outbox.mark(first["id"], attempts=3, last_code=500, last_error="HTTP 500", next_at_ms=50)
    d = outbox.head("chat")
    assert d is not None
    outbox.mark(d["id"], status="failed", attempts=9, last_error="ConnectTimeout")
    assert outbox.rule_states() == {"fills": {"last_fired": 3, "status": "pending"},
                                    "down": {"last_fired": 4, "status": "failed"}}
    assert outbox.summary() == {
        "backlog": 2, "retrying": 1, "failed": 1,
        "last_delivered": {"destination": "ops", "rule": "down", "delivered_ms": 9, "attempts": 2, "last_code": 200},
        "last_failure": {"destination": "chat", "rule": "down", "status": "failed", "attempts": 9, "last_code": None,
                         "last_error": "ConnectTimeout"}}
