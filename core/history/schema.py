"""The history tables (SQLAlchemy Core). Alembic migrations (alembic/versions) create and change them.

Money and sizes are Lighter's decimal strings, kept verbatim as text. The one exception is `equity_f`, the equity as
a double, which exists only so the database can compute min/max per bucket; first/last are served from the text.
Times are ms since the epoch (Lighter's trade `timestamp` unit).
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()
# 64-bit ids on PostgreSQL; SQLite autoincrements only an INTEGER PRIMARY KEY (which is 64-bit there anyway).
ID = BigInteger().with_variant(Integer, "sqlite")

# The portfolio's equity is stored as a pseudo-account: the sum over accounts at each sample.
PORTFOLIO = -1

fills = Table(
    "fills", metadata,
    Column("account_index", BigInteger, primary_key=True),
    Column("trade_id", BigInteger, primary_key=True),     # dedup key: a fill is stored once per account
    Column("ts", BigInteger, nullable=False),
    Column("market_id", BigInteger, nullable=False),
    Column("side", String(4), nullable=False),            # buy | sell (this account's side)
    Column("role", String(5), nullable=False),            # maker | taker
    Column("price", String(40), nullable=False),
    Column("size", String(40), nullable=False),
    Column("fee", String(40)),                            # Lighter's integer fee units, as text; null if absent
    Column("realized_pnl", String(40)),                   # null when upstream did not say
    Column("order_index", BigInteger),
    Column("type", String(20), nullable=False),           # trade | liquidation | deleverage | market-settlement
    Column("source", String(8), nullable=False),          # ws | rest | backfill
    Index("ix_fills_account_ts", "account_index", "ts"),
)

position_events = Table(
    "position_events", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("account_index", BigInteger, nullable=False),
    Column("market_id", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),            # open | increase | reduce | close | flip
    Column("size_before", String(40), nullable=False),    # signed
    Column("size_after", String(40), nullable=False),     # signed
    Column("avg_entry_price", String(40)),
    Column("realized_pnl", String(40)),
    UniqueConstraint("account_index", "market_id", "ts", "size_after", name="uq_position_events"),
    Index("ix_position_events_account_ts", "account_index", "ts"),
)

order_events = Table(
    "order_events", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("account_index", BigInteger, nullable=False),
    Column("order_index", BigInteger, nullable=False),
    Column("market_id", BigInteger, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("kind", String(14), nullable=False),           # placed | partly_filled | filled | cancelled
    Column("status", String(40), nullable=False),         # Lighter's status (a terminal one on filled/cancelled)
    Column("side", String(4)),
    Column("price", String(40)),
    Column("initial_size", String(40)),
    Column("remaining", String(40)),
    UniqueConstraint("account_index", "order_index", "kind", "remaining", name="uq_order_events"),
    Index("ix_order_events_account_ts", "account_index", "ts"),
)

equity_samples = Table(
    "equity_samples", metadata,
    Column("account_index", BigInteger, primary_key=True),  # PORTFOLIO (-1) for the sum over accounts
    Column("ts", BigInteger, primary_key=True),
    Column("equity", String(40), nullable=False),
    Column("equity_f", Float, nullable=False),
    Column("collateral", String(40)),
    Column("upnl", String(40)),
    Column("margin_usage", String(40)),
    Column("leverage", String(40)),
)

funding_payments = Table(
    "funding_payments", metadata,
    Column("account_index", BigInteger, primary_key=True),
    Column("market_id", BigInteger, primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("amount", String(40), nullable=False),         # the change of total_funding_paid_out since last seen
    Column("total_paid_out", String(40), nullable=False),
)

TABLES = {str(t.name): t for t in (fills, position_events, order_events, equity_samples, funding_payments)}

# The alert outbox lives in the same database and schema (core/alerts/tables.py, migration 0002).
import core.alerts.tables  # noqa: E402, F401
