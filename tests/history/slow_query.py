"""The work tests/history/test_gevent.py hands to tests/hub_probe.py: one slow query through HistoryDB.

Imported by the probe after gevent's monkey patching (never by the test process itself).
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text

from core.history.db import HistoryDB

SLOW_SQLITE = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 4000000) "
               "SELECT count(*) FROM n")
SLOW_PG = "SELECT pg_sleep(0.6)"


def prepare(url: str, how: str) -> Callable[[], dict[str, object]]:
    """`how`: "offload" (as HistoryDB runs queries) or "direct" (the same query on the hub: the control that shows
    the probe can see a blocked hub)."""
    db = HistoryDB(url)
    query = SLOW_SQLITE if db.dialect == "sqlite" else SLOW_PG

    def slow() -> None:
        with db.engine.connect() as conn:
            conn.execute(text(query)).scalar()

    def work() -> dict[str, object]:
        if how == "offload":
            db.offload(slow)
        else:
            slow()
        return {}
    return work
