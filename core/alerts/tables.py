"""The alert outbox table, in the history schema's MetaData (one schema: tests compare it with what the Alembic
migrations create; core/history/schema.py imports this module at its end)."""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text, UniqueConstraint

from core.history.schema import ID, metadata

ERROR_CHARS = 300  # a delivery error (its type name) is stored up to this long

alert_outbox = Table(
    "alert_outbox", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),       # the idempotency key (webhook-id)
    Column("destination", String(100), nullable=False),
    Column("rule", String(100), nullable=False),
    Column("account_index", BigInteger, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("body", Text, nullable=False),                 # the JSON payload, sent verbatim on every attempt
    Column("status", String(10), nullable=False),         # pending | delivered | failed
    Column("attempts", Integer, nullable=False),
    Column("next_at_ms", BigInteger, nullable=False),
    Column("last_code", Integer),                         # the receiver's last HTTP status (webhooks)
    Column("last_error", String(ERROR_CHARS)),
    Column("delivered_ms", BigInteger),
    UniqueConstraint("event_id", "destination", name="uq_alert_outbox"),
    Index("ix_alert_outbox_pending", "status", "destination", "id"),
)
