"""Database access for history: the engine, migrations, batched idempotent writes, paged reads, retention.

gevent: SQLite's driver (pysqlite, C) blocks the calling thread for the whole query, so every SQLite call runs on
one dedicated native thread (a gevent ThreadPool of size 1, `offload`) with one long-lived connection: the calling
greenlet waits, the hub does not. psycopg 3
waits cooperatively under gevent since 3.1.14 (it detects gevent's monkey-patching), so PostgreSQL calls run on the
calling greenlet with a normal connection pool. tests/history/test_gevent.py holds both: a heartbeat greenlet keeps
ticking during a slow query.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from gevent.threadpool import ThreadPool
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    create_engine,
    delete,
    event,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from core.history.schema import TABLES, equity_samples, fills

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_DIR = ROOT / "alembic"
SQLITE_BUSY_TIMEOUT_S = 5.0    # a locked SQLite database is waited on this long before the write fails
PG_CONNECT_TIMEOUT_S = 5       # a PostgreSQL server that does not answer fails the call after this long
MINUTE_MS = 60_000
DB_ERRORS = (SQLAlchemyError, OSError)
# The tables `page` reads, each with the column that orders rows of the same ts (the second half of a cursor).
PAGE_KEYS: Mapping[str, str] = {"fills": "trade_id", "position_events": "id", "order_events": "id",
                                "funding_payments": "market_id"}


class HistoryDB:
    """One engine per process. Methods block their caller (a greenlet under gevent), never the hub."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # One connection, kept open, used by one dedicated thread: opening one per call costs ~2 ms, and
            # closing WAL's last connection checkpoints (disk I/O that stalled the worker's store writes).
            self.engine: Engine = create_engine(url, poolclass=StaticPool,
                                                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S,
                                                              "check_same_thread": False})
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self._thread: ThreadPool | None = ThreadPool(1)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4, pool_timeout=10,
                                        connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S})
            self._thread = None

    # -- threading --------------------------------------------------------------------------------------------
    def offload(self, func_: Callable[..., T], *args: Any) -> T:
        """Run blocking database work without blocking the gevent hub (see the module docstring)."""
        if self._thread is None:
            return func_(*args)

        def guarded() -> tuple[bool, Any]:
            # Errors travel back as values: gevent's threadpool would also print each one's traceback.
            try:
                return True, func_(*args)
            except Exception as exc:  # noqa: BLE001 - re-raised in the calling greenlet just below
                return False, exc
        ok, value = self._thread.apply(guarded)
        if not ok:
            raise value
        result: T = value
        return result

    def reset(self) -> None:
        """Drop pooled connections (after a failure: the next call opens a fresh one)."""
        self.offload(self.engine.dispose)

    def close(self) -> None:
        self.engine.dispose()
        if self._thread is not None:
            self._thread.kill()

    # -- schema -----------------------------------------------------------------------------------------------
    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (what `alembic upgrade head` does)."""
        self.offload(self._migrate)

    @staticmethod
    def load_migrations() -> None:
        """Import Alembic on the calling thread, at start, before the hub has anything to do (the worker does).
        Left to `_migrate`, the import ran on the database thread, where every one of its file reads waits for
        the GIL behind the hub: 0.25 s on the main thread, 3 s on that thread beside a busy hub, and up to 19 s
        in the test suite, where it held a new worker's history (and its alerts outbox) back."""
        import alembic.command  # noqa: F401 - imported for its side effect: loaded once, for _migrate
        import alembic.config  # noqa: F401

    def _migrate(self) -> None:
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, every start
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(ALEMBIC_DIR))
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def ready(self) -> bool:
        """The schema exists (the worker has migrated at least once)."""
        def check() -> bool:
            with self.engine.connect() as conn:
                return bool(self.engine.dialect.has_table(conn, "equity_samples"))
        return self.offload(check)

    # -- writes -----------------------------------------------------------------------------------------------
    def write(self, batch: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
        """Insert every row of `batch` ({table name: rows}) in one transaction; rows already stored (same key)
        are skipped, so a batch can be retried after a crash or a failed commit. Returns the rows offered."""
        return self.offload(self._write, batch)

    def _write(self, batch: Mapping[str, Sequence[Mapping[str, Any]]]) -> int:
        count = 0
        with self.engine.begin() as conn:
            for name, rows in batch.items():
                if rows:
                    conn.execute(self._insert_ignore(TABLES[name]), list(rows))
                    count += len(rows)
        return count

    def _insert_ignore(self, table: Table) -> Any:
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert
            return sqlite_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        return pg_insert(table).on_conflict_do_nothing()

    # -- reads ------------------------------------------------------------------------------------------------
    def page(self, table_name: str, account: int, start: int, end: int, limit: int,
             cursor: tuple[int, int] | None) -> list[dict[str, Any]]:
        """Rows of `table_name` (a PAGE_KEYS table) in [start, end), newest first, after `cursor` (the (ts, key)
        of the last row served, key being the table's PAGE_KEYS column)."""
        table = TABLES[table_name]
        ts, key = table.c.ts, table.c[PAGE_KEYS[table_name]]
        query = select(table).where(table.c.account_index == account, ts >= start, ts < end)
        if cursor is not None:
            query = query.where(or_(ts < cursor[0], and_(ts == cursor[0], key < cursor[1])))
        return self._rows(query.order_by(ts.desc(), key.desc()).limit(limit))

    def equity_buckets(self, account: int, start: int, end: int, bucket_ms: int) -> list[dict[str, Any]]:
        """Samples in [start, end) grouped into buckets of `bucket_ms`: first/min/max/last equity per bucket,
        computed by the database. first/last are the stored decimal text; min/max come from the double column."""
        c = equity_samples.c
        bucket = ((c.ts - start) // bucket_ms).label("bucket")
        agg = (select(bucket, func.min(c.ts).label("first_ts"), func.max(c.ts).label("last_ts"),
                      func.min(c.equity_f).label("min"), func.max(c.equity_f).label("max"),
                      func.count().label("samples"))
               .where(c.account_index == account, c.ts >= start, c.ts < end)
               # By the label: the repeated expression would carry its own bind parameters, and SQLite would
               # not see it is the selected one (a temp B-tree over every row: 2x slower on 90 days).
               .group_by(literal_column("bucket")).subquery())
        first, last = equity_samples.alias("first"), equity_samples.alias("last")
        query = (select(agg.c.bucket, agg.c.first_ts, agg.c.last_ts, agg.c.min, agg.c.max, agg.c.samples,
                        first.c.equity.label("first"), last.c.equity.label("last"),
                        last.c.collateral, last.c.upnl, last.c.margin_usage, last.c.leverage)
                 .join(first, and_(first.c.account_index == account, first.c.ts == agg.c.first_ts))
                 .join(last, and_(last.c.account_index == account, last.c.ts == agg.c.last_ts))
                 .order_by(agg.c.bucket))
        rows = self._rows(query)
        for row in rows:
            row["ts"] = start + row.pop("bucket") * bucket_ms
        return rows

    def newest_fill_ts(self, account: int) -> int | None:
        def run() -> int | None:
            with self.engine.connect() as conn:
                value = conn.execute(select(func.max(fills.c.ts)).where(fills.c.account_index == account)).scalar()
            return int(value) if value is not None else None
        return self.offload(run)

    def stats(self) -> dict[str, Any]:
        """Row counts per table and the database's size in bytes."""
        return self.offload(self._stats)

    def _stats(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = {str(name): int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
                    for name, table in TABLES.items()}
            if self.dialect == "sqlite":
                size = int(conn.execute(text("PRAGMA page_count")).scalar() or 0) \
                    * int(conn.execute(text("PRAGMA page_size")).scalar() or 0)
            else:
                size = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar() or 0)
        return {"size_bytes": size, "rows": rows}

    def _rows(self, query: Any) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(query)]
        return self.offload(run)

    # -- retention --------------------------------------------------------------------------------------------
    def retain(self, now: int, retention_ms: int, downsample_after_ms: int, downsampled_until: int) -> int:
        """Delete rows older than the retention; keep one equity sample per account and minute (the minute's last)
        for samples older than `downsample_after_ms`, from `downsampled_until` on. Returns the new
        `downsampled_until` (minute-aligned) for the next run."""
        return self.offload(self._retain, now, retention_ms, downsample_after_ms, downsampled_until)

    def _retain(self, now: int, retention_ms: int, downsample_after_ms: int, downsampled_until: int) -> int:
        oldest = now - retention_ms
        cutoff = (now - downsample_after_ms) // MINUTE_MS * MINUTE_MS
        since = max(downsampled_until, oldest) // MINUTE_MS * MINUTE_MS
        with self.engine.begin() as conn:
            for table in TABLES.values():
                conn.execute(delete(table).where(table.c.ts < oldest))
            if cutoff > since:
                _downsample(conn, since, cutoff)
        return max(cutoff, downsampled_until)


def _downsample(conn: Connection, since: int, cutoff: int) -> None:
    c = equity_samples.c
    window = and_(c.ts >= since, c.ts < cutoff)
    keep = select(c.account_index, func.max(c.ts)).where(window).group_by(c.account_index, c.ts // MINUTE_MS)
    conn.execute(delete(equity_samples).where(window, tuple_(c.account_index, c.ts).not_in(keep)))


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL: the web reads while the worker writes; NORMAL sync is durable across process crashes in WAL mode."""
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.close()


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (None for other databases or :memory:)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return os.path.abspath(parsed.database)
