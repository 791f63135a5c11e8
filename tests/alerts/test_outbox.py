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
