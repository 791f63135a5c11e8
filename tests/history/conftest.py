"""A migrated history database per test, on SQLite (a temp file) and on our own throwaway PostgreSQL."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.history.db import HistoryDB


def database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    server = request.getfixturevalue("postgres_server")  # session-scoped: usable from any fixture scope
    if server.proc is None or server.proc.poll() is not None:
        server.start()
    url: str = server.create_database()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request.param, tmp_path, request)


@pytest.fixture
def history_db(history_url: str) -> Iterator[HistoryDB]:
    db = HistoryDB(history_url)
    db.migrate()
    yield db
    db.close()
