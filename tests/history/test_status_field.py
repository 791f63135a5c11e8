"""/api/status carries the worker's `history` record as written (the web adds nothing and hides nothing)."""
from __future__ import annotations

from pathlib import Path

from app.status import status_view
from core.settings import from_env
from core.store import Store


def test_status_view_relays_the_history_record(tmp_path: Path) -> None:
    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    history = {"database": "sqlite", "writing": True, "healthy": False, "backlog_rows": 12, "backlog_bytes": 3400,
               "dropped_rows": 2, "written_rows": 9, "failures": 3, "last_error": "OperationalError: locked",
               "size_bytes": 4096, "rows": {"fills": 9}}
    store.put_status({"schema": 1, "pid": 1, "started_at": 1, "history": history})
    assert status_view(store, 5.0, 0)["history"] == history
    store.put_status({"schema": 1, "pid": 1, "started_at": 1})
    assert status_view(store, 5.0, 0)["history"] is None  # an older worker, or history disabled
