"""Database I/O never blocks the gevent hub: a heartbeat greenlet keeps ticking during a slow query.

SQLite (pysqlite is C and holds the thread) goes through gevent's threadpool; psycopg 3 waits cooperatively under
gevent's monkey-patching. The control run executes the SQLite query on the hub and must show the stall, so the probe
is known to see one.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.history.conftest import database_url
from tests.hub_probe import probe as hub_probe
from tests.paths import ROOT

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


ATTACH = """
import sys
from gevent import monkey
monkey.patch_all()
from core.settings import from_env
from core.store import Store
from core.tuning import worker_from_env
from worker.alerts import attach as attach_alerts
from worker.history import attach as attach_history
from worker.runtime import Runtime

env = dict(arg.split("=", 1) for arg in sys.argv[1:])
settings = from_env(env)
rt = Runtime(settings, worker_from_env(env), Store.from_settings(settings))
before = "alembic.command" in sys.modules
{attach}(rt)
print(before, "alembic.command" in sys.modules)
"""


@pytest.mark.parametrize("attach", ["attach_history", "attach_alerts"])
def test_the_worker_loads_alembic_on_its_main_thread_at_start(attach: str, tmp_path: Path) -> None:
    """Imported later, on the database thread, Alembic's import waited for the GIL behind the hub at every file
    read (3 s beside a busy hub, against 0.25 s; up to 19 s in this suite): a new worker's history and alerts outbox
    were held back that long. history and alerts each migrate, so each loads it when attached."""
    env = {"CACHE_DIR": str(tmp_path / "store"), "DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}",
           "HISTORY_ENABLED": "1" if attach == "attach_history" else "0",
           "ALERTS": '[destinations.a]\nwebhook = "http://127.0.0.1:9/hook"\n'
                     'secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"\n'
                     '[[rules]]\nname = "s"\nwhen = "stale"\nseconds = 30\n'}
    out = subprocess.run([sys.executable, "-c", ATTACH.replace("{attach}", attach),
                          *[f"{k}={v}" for k, v in env.items()]],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["False", "True"], out.stdout
