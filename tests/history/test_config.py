"""History settings: defaults, bounds, and errors that name the variable but never show a database password."""
from __future__ import annotations

import pytest

from core.history.config import DEFAULT_DATABASE_URL, HistorySettings
from core.settings import SettingsError, from_env


def test_defaults() -> None:
    history = from_env({}).history
    assert history == HistorySettings()
    assert history.database_url.reveal() == DEFAULT_DATABASE_URL and history.sample_s == 10
    assert history.retention_days == 90 and history.downsample_after_days == 7


@pytest.mark.parametrize(("name", "value"), [
    ("DATABASE_URL", "mysql://root:hunter2@db/x"), ("DATABASE_URL", "hunter2"),
    ("HISTORY_SAMPLE_S", "0"), ("HISTORY_RETENTION_DAYS", "-1"), ("HISTORY_OUTBOX_ROWS", "0"),
    ("HISTORY_OUTBOX_BYTES", "10"), ("HISTORY_ENABLED", "maybe"), ("HISTORY_FLUSH_S", "nan"),
    ("HISTORY_BACKFILL_PAGES", "1.5"), ("HISTORY_DOWNSAMPLE_AFTER_DAYS", "100"),
])
def test_bad_values_name_the_variable_and_hide_secrets(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env({name: value})
    assert name in str(caught.value) and "hunter2" not in str(caught.value)


def test_the_password_is_redacted_everywhere() -> None:
    settings = from_env({"DATABASE_URL": "postgresql://lb:s%40cret@db.internal:5432/history"})
    assert {"s@cret", "s%40cret"} <= set(settings.secrets())
    assert settings.history.redacted_url == "postgresql+psycopg://db.internal:5432/history"
    assert "cret" not in repr(settings)
