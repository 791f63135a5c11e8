"""core/history/db.py against real SQLite and real PostgreSQL: migrations, idempotent writes, pages, buckets,
retention and downsampling, stats."""
from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.history.db import MINUTE_MS, HistoryDB
from core.history.schema import metadata


def fill(trade_id: int, ts: int, account: int = 7) -> dict[str, Any]:
    return {"account_index": account, "trade_id": trade_id, "ts": ts, "market_id": 0, "side": "buy",
            "role": "taker", "price": "100.5", "size": "0.25", "fee": "5", "realized_pnl": None,
            "order_index": 1, "type": "trade", "source": "ws"}


def sample(ts: int, equity: str, account: int = 7) -> dict[str, Any]:
    return {"account_index": account, "ts": ts, "equity": equity, "equity_f": float(equity), "collateral": "1",
            "upnl": "0", "margin_usage": None, "leverage": None}


def test_the_migration_creates_exactly_the_schema_the_code_uses(history_db: HistoryDB) -> None:
    with history_db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
    history_db.migrate()  # idempotent: a second start migrates nothing
    assert history_db.ready()


def test_a_fill_is_stored_once_however_often_it_is_written(history_db: HistoryDB) -> None:
    rows = [fill(i, 1000 + i) for i in range(10)]
    history_db.write({"fills": rows})
    history_db.write({"fills": rows[5:] + [fill(10, 2000)]})
    assert history_db.stats()["rows"]["fills"] == 11
    page = history_db.page("fills", 7, 0, 10**13, 100, None)
    assert [r["trade_id"] for r in page] == list(range(10, -1, -1))
    assert page[0]["price"] == "100.5" and page[0]["size"] == "0.25"  # decimal text, verbatim


def test_fills_page_through_a_cursor_in_time_order(history_db: HistoryDB) -> None:
    # Two fills share each timestamp: the cursor must break ties by trade id.
    history_db.write({"fills": [fill(i, 1000 + i // 2) for i in range(25)] + [fill(99, 1001, account=8)]})
    seen: list[int] = []
    cursor = None
    while True:
        page = history_db.page("fills", 7, 0, 10**13, 10, cursor)
        seen += [r["trade_id"] for r in page]
        if len(page) < 10:
            break
        cursor = (page[-1]["ts"], page[-1]["trade_id"])
    assert seen == list(range(24, -1, -1))
    window = history_db.page("fills", 7, 1002, 1004, 100, None)
    assert sorted(r["trade_id"] for r in window) == [4, 5, 6, 7]


def test_equity_buckets_are_first_min_max_last_of_each_bucket(history_db: HistoryDB) -> None:
    values = ["10.5", "12.25", "9.75", "11.0", "20.0", "19.5"]
    history_db.write({"equity_samples": [sample(1000 * (i + 1), v) for i, v in enumerate(values)]
                      + [sample(2000, "999", account=8)]})
    points = history_db.equity_buckets(7, 0, 10_000, 3000)
    assert [(p["ts"], p["first"], p["min"], p["max"], p["last"], p["samples"]) for p in points] == [
        (0, "10.5", 10.5, 12.25, "12.25", 2), (3000, "9.75", 9.75, 20.0, "20.0", 3),
        (6000, "19.5", 19.5, 19.5, "19.5", 1)]


def test_retention_deletes_old_rows_and_downsamples_old_equity_to_one_per_minute(history_db: HistoryDB) -> None:
    now = 100 * MINUTE_MS
    old = [sample(60 * MINUTE_MS + s * 10_000, str(s)) for s in range(12)]          # two minutes, 6 each: old
    recent = [sample(95 * MINUTE_MS + s * 10_000, str(s)) for s in range(6)]       # inside the last 7 "minutes"
    expired = [sample(1 * MINUTE_MS, "1")]
    history_db.write({"equity_samples": old + recent + expired, "fills": [fill(1, 1), fill(2, now - 1000)]})
    until = history_db.retain(now, retention_ms=50 * MINUTE_MS, downsample_after_ms=7 * MINUTE_MS,
                              downsampled_until=0)
    assert until == 93 * MINUTE_MS
    points = history_db.equity_buckets(7, 0, now, 1000)
    kept = [p["ts"] for p in points]
    assert kept == [60 * MINUTE_MS + 50_000, 61 * MINUTE_MS + 50_000] + [r["ts"] for r in recent]
    assert [r["trade_id"] for r in history_db.page("fills", 7, 0, now, 10, None)] == [2]
    # A second run with nothing new to do keeps what is there.
    assert history_db.retain(now, 50 * MINUTE_MS, 7 * MINUTE_MS, until) == until
    assert history_db.stats()["rows"]["equity_samples"] == 2 + len(recent)


def test_stats_report_rows_and_size(history_db: HistoryDB) -> None:
    history_db.write({"fills": [fill(1, 1)], "equity_samples": [sample(1, "1"), sample(2, "2")]})
    stats = history_db.stats()
    assert stats["rows"]["fills"] == 1 and stats["rows"]["equity_samples"] == 2
    assert stats["size_bytes"] > 0


def test_the_documented_command_migrates_by_hand(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from tests.paths import ROOT

    url = f"sqlite:///{tmp_path / 'by-hand.sqlite3'}"
    alembic = Path(sys.executable).with_name("alembic")
    done = subprocess.run([str(alembic), "upgrade", "head"], cwd=ROOT, capture_output=True, timeout=60,
                          env={"DATABASE_URL": url, "DOTENV_FILE": "", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert HistoryDB(url).ready()
