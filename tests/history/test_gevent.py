"""Database I/O never blocks the gevent hub: a heartbeat greenlet keeps ticking during a slow query.

SQLite (pysqlite is C and holds the thread) goes through gevent's threadpool; psycopg 3 waits cooperatively under
gevent's monkey-patching. The control run executes the SQLite query on the hub and must show the stall, so the probe
is known to see one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.history.conftest import database_url
from tests.hub_probe import probe as hub_probe

MAX_GAP_MS = 250  # a 10 ms heartbeat on a busy shared 2-core machine; a blocked hub shows the whole query (≥ 500 ms)


def probe(url: str, how: str) -> dict[str, Any]:
    """The slow query (tests/history/slow_query.py) in a gevent-patched process, as the worker and the web run."""
    return hub_probe("patched", "tests.history.slow_query:prepare", url, how)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_slow_query_does_not_stall_the_hub(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    result = probe(database_url(kind, tmp_path, request), "offload")
    assert result["elapsed_ms"] >= 2 * MAX_GAP_MS, result  # the query really was slow
    assert result["max_gap_ms"] < MAX_GAP_MS, result


def test_the_probe_sees_a_blocked_hub(tmp_path: Path) -> None:
    result = probe(database_url("sqlite", tmp_path, None), "direct")  # type: ignore[arg-type]
    assert result["max_gap_ms"] >= 0.8 * result["elapsed_ms"] >= 1.6 * MAX_GAP_MS, result
