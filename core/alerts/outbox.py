"""The durable alert outbox, in the history database: one row per (alert id, destination).

Rows are inserted when an alert fires and marked when delivered (or given up), so a restart loses nothing. The
unique (event_id, destination) key makes a re-fired alert (same id) a no-op. I/O runs through HistoryDB.offload
(off the gevent hub for SQLite; psycopg 3 is cooperative).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    delete,
    func,
    select,
    update,
)

from core.alerts.tables import ERROR_CHARS, alert_outbox
from core.history.db import HistoryDB

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
__all__ = ["ERROR_CHARS", "AlertOutbox", "alert_outbox"]



class AlertOutbox:
    def __init__(self, db: HistoryDB) -> None:
        self.db = db

    def add(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert pending rows; a row whose (event_id, destination) is already there is skipped."""
        def run() -> None:
            with self.db.engine.begin() as conn:
                conn.execute(self.db._insert_ignore(alert_outbox), list(rows))
        if rows:
            self.db.offload(run)

    def head(self, destination: str, rules: Collection[str] | None = None) -> dict[str, Any] | None:
        """The oldest pending row of a destination (of these rules only, when given): delivery is in order, one at
        a time per destination."""
        c = alert_outbox.c
        query = select(alert_outbox).where(c.status == PENDING, c.destination == destination)
        if rules is not None:
            query = query.where(c.rule.in_(list(rules)))
        rows = self._rows(query.order_by(c.id).limit(1))
        return rows[0] if rows else None

    def claim(self, row_id: int, seen_next_at_ms: int, until_ms: int) -> bool:
        """Take the next attempt of a pending row until `until_ms`: a compare-and-set on `next_at_ms`, so of
        several senders that read the same row (the worker's, each web process's) exactly one wins. A sender that
        dies mid-attempt leaves the row to be retried once the claim runs out."""
        c = alert_outbox.c

        def run() -> bool:
            with self.db.engine.begin() as conn:
                result = conn.execute(update(alert_outbox).where(c.id == row_id, c.status == PENDING,
                                                                 c.next_at_ms == seen_next_at_ms)
                                      .values(next_at_ms=until_ms))
                return result.rowcount == 1
        return self.db.offload(run)

    def mark(self, row_id: int, **values: Any) -> None:
        def run() -> None:
            with self.db.engine.begin() as conn:
                conn.execute(update(alert_outbox).where(alert_outbox.c.id == row_id).values(**values))
        self.db.offload(run)

    def prune(self, before_ms: int) -> int:
        """Delete delivered and failed rows fired before `before_ms` (pending rows stay until sent or given up)."""
        c = alert_outbox.c

        def run() -> int:
            with self.db.engine.begin() as conn:
                return int(conn.execute(delete(alert_outbox).where(c.status != PENDING,
                                                                    c.created_ms < before_ms)).rowcount or 0)
        return self.db.offload(run)

    def log(self, limit: int) -> list[dict[str, Any]]:
        """The newest rows, without their bodies."""
        c = alert_outbox.c
        return self._rows(select(c.id, c.event_id, c.destination, c.rule, c.account_index, c.created_ms,
                                    c.status, c.attempts, c.next_at_ms, c.last_code, c.last_error, c.delivered_ms)
                             .order_by(c.id.desc()).limit(limit))

    def last_fired(self) -> dict[str, int]:
        c = alert_outbox.c
        rows = self._rows(select(c.rule, func.max(c.created_ms).label("at")).group_by(c.rule))
        return {row["rule"]: int(row["at"]) for row in rows}

    def rule_states(self) -> dict[str, dict[str, Any]]:
        """Per rule, its newest alert: when it fired and where its delivery stands (the newest row's status)."""
        c = alert_outbox.c
        newest = select(func.max(c.id).label("id")).group_by(c.rule).subquery()
        rows = self._rows(select(c.rule, c.created_ms, c.status).join(newest, c.id == newest.c.id))
        return {row["rule"]: {"last_fired": int(row["created_ms"]), "status": row["status"]} for row in rows}

    def summary(self) -> dict[str, Any]:
        """For /api/status: the backlog, failures, the last delivery and the last failed attempt."""
        c = alert_outbox.c
        counts = self._rows(select(
            func.count().filter(c.status == PENDING).label("backlog"),
            func.count().filter(c.status == PENDING, c.attempts > 0).label("retrying"),
            func.count().filter(c.status == FAILED).label("failed")))[0]
        delivered = self._rows(select(c.destination, c.rule, c.delivered_ms, c.attempts, c.last_code)
                               .where(c.status == DELIVERED).order_by(c.delivered_ms.desc()).limit(1))
        failing = self._rows(select(c.destination, c.rule, c.status, c.attempts, c.last_code, c.last_error)
                             .where(c.status != DELIVERED, c.attempts > 0).order_by(c.id.desc()).limit(1))
        return {**{k: int(v or 0) for k, v in counts.items()},
                "last_delivered": delivered[0] if delivered else None,
                "last_failure": failing[0] if failing else None}

    def _rows(self, query: Any) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self.db.engine.connect() as conn:
                # str(): column names are quoted_name (a str subclass), which orjson refuses as keys.
                return [{str(k): v for k, v in row._mapping.items()} for row in conn.execute(query)]
        return self.db.offload(run)

    def pending_count(self) -> int:
        c = alert_outbox.c
        rows = self._rows(select(func.count().label("n")).where(c.status == PENDING))
        return int(rows[0]["n"])
