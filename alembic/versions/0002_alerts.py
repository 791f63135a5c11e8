"""Alerts: the durable outbox (core/alerts/outbox.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("destination", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("account_index", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_at_ms", sa.BigInteger, nullable=False),
        sa.Column("last_code", sa.Integer),
        sa.Column("last_error", sa.String(300)),
        sa.Column("delivered_ms", sa.BigInteger),
        sa.UniqueConstraint("event_id", "destination", name="uq_alert_outbox"),
    )
    op.create_index("ix_alert_outbox_pending", "alert_outbox", ["status", "destination", "id"])


def downgrade() -> None:
    op.drop_table("alert_outbox")
