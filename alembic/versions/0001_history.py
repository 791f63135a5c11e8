"""History tables: fills, position and order events, equity samples, funding payments.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _text(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.String(40), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "fills",
        sa.Column("account_index", sa.BigInteger, primary_key=True),
        sa.Column("trade_id", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("market_id", sa.BigInteger, nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("role", sa.String(5), nullable=False),
        _text("price", False), _text("size", False), _text("fee"), _text("realized_pnl"),
        sa.Column("order_index", sa.BigInteger),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
    )
    op.create_index("ix_fills_account_ts", "fills", ["account_index", "ts"])
    op.create_table(
        "position_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("account_index", sa.BigInteger, nullable=False),
        sa.Column("market_id", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        _text("size_before", False), _text("size_after", False), _text("avg_entry_price"), _text("realized_pnl"),
        sa.UniqueConstraint("account_index", "market_id", "ts", "size_after", name="uq_position_events"),
    )
    op.create_index("ix_position_events_account_ts", "position_events", ["account_index", "ts"])
    op.create_table(
        "order_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("account_index", sa.BigInteger, nullable=False),
        sa.Column("order_index", sa.BigInteger, nullable=False),
        sa.Column("market_id", sa.BigInteger, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(14), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("side", sa.String(4)),
        _text("price"), _text("initial_size"), _text("remaining"),
        sa.UniqueConstraint("account_index", "order_index", "kind", "remaining", name="uq_order_events"),
    )
    op.create_index("ix_order_events_account_ts", "order_events", ["account_index", "ts"])
    op.create_table(
        "equity_samples",
        sa.Column("account_index", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        _text("equity", False),
        sa.Column("equity_f", sa.Float, nullable=False),
        _text("collateral"), _text("upnl"), _text("margin_usage"), _text("leverage"),
    )
    op.create_table(
        "funding_payments",
        sa.Column("account_index", sa.BigInteger, primary_key=True),
        sa.Column("market_id", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        _text("amount", False), _text("total_paid_out", False),
    )


def downgrade() -> None:
    for name in ("funding_payments", "equity_samples", "order_events", "position_events", "fills"):
        op.drop_table(name)
