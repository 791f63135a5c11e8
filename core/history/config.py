"""History settings (`DATABASE_URL`, `HISTORY_*`): one frozen object built from the environment mapping given."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from core.env import Secret, SettingsError, flag, number

DEFAULT_DATABASE_URL = "sqlite:///.cache/history.sqlite3"
# SQLAlchemy URL schemes we run on and test: SQLite (embedded) and PostgreSQL through psycopg 3.
_SCHEMES = {"sqlite": "sqlite", "postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg",
            "postgresql+psycopg": "postgresql+psycopg"}


@dataclass(frozen=True)
class HistorySettings:
    enabled: bool = True                      # HISTORY_ENABLED=0: the worker records nothing, the API answers 503
    database_url: Secret = field(default=Secret(DEFAULT_DATABASE_URL), repr=False)
    sample_s: float = 10.0                    # equity sample period (plus one on every fill)
    retention_days: float = 90.0              # rows older than this are deleted
    downsample_after_days: float = 7.0        # equity samples older than this keep one per minute
    outbox_rows: int = 100_000                # rows waiting while the database is unavailable...
    outbox_bytes: int = 64 * 1024 * 1024      # ...and their encoded size; past either bound the oldest are dropped
    flush_every_s: float = 0.5                # how often queued rows are written in one transaction
    backfill_pages: int = 20                  # at most this many trades pages (100 fills each) per account per run
    stats_s: float = 30.0                     # row counts and database size in the status, refreshed this often
    backfill_s: float = 300.0                 # backfill runs at start, on taking the writer role, and this often

    @property
    def dialect(self) -> str:
        return self.database_url.reveal().split(":", 1)[0].split("+", 1)[0]

    def secrets(self) -> list[str]:
        """The URL's password and the URL itself, when it has one (for log redaction)."""
        password = urlsplit(self.database_url.reveal()).password
        return [password, unquote(password), self.database_url.reveal()] if password else []

    @property
    def redacted_url(self) -> str:
        """The URL without credentials, for logs and status."""
        split = urlsplit(self.database_url.reveal())
        host = split.hostname or ""
        port = f":{split.port}" if split.port else ""
        return f"{split.scheme}://{host}{port}{split.path}" if host else f"{split.scheme}://{split.path}"


def normalize_url(raw: str) -> str:
    """Render/Heroku hand out `postgres://` or `postgresql://`: both mean psycopg 3 here."""
    scheme, sep, rest = raw.partition("://")
    driver = _SCHEMES.get(scheme.lower())
    if not sep or driver is None:
        raise SettingsError("DATABASE_URL must be a sqlite:/// or postgresql:// URL")
    return f"{driver}://{rest}"


def history_from_env(env: Mapping[str, str]) -> HistorySettings:
    """Raises SettingsError naming the variable (never its value: DATABASE_URL may carry a password)."""
    raw_url = env.get("DATABASE_URL", "").strip() or DEFAULT_DATABASE_URL
    enabled_raw = env.get("HISTORY_ENABLED", "").strip()
    settings = HistorySettings(
        enabled=flag("HISTORY_ENABLED", enabled_raw) if enabled_raw else True,
        database_url=Secret(normalize_url(raw_url)),
        sample_s=number(env, "HISTORY_SAMPLE_S", 10.0, minimum=0.05),
        retention_days=number(env, "HISTORY_RETENTION_DAYS", 90.0, minimum=0.001),
        downsample_after_days=number(env, "HISTORY_DOWNSAMPLE_AFTER_DAYS", 7.0, minimum=0.001),
        outbox_rows=int(number(env, "HISTORY_OUTBOX_ROWS", 100_000, minimum=1, integer=True)),
        outbox_bytes=int(number(env, "HISTORY_OUTBOX_BYTES", 64 * 1024 * 1024, minimum=1024, integer=True)),
        flush_every_s=number(env, "HISTORY_FLUSH_S", 0.5, minimum=0.01),
        backfill_pages=int(number(env, "HISTORY_BACKFILL_PAGES", 20, minimum=0, integer=True)),
        backfill_s=number(env, "HISTORY_BACKFILL_S", 300.0, minimum=1.0),
        stats_s=number(env, "HISTORY_STATS_S", 30.0, minimum=0.1),
    )
    if settings.downsample_after_days > settings.retention_days:
        raise SettingsError("HISTORY_DOWNSAMPLE_AFTER_DAYS must not exceed HISTORY_RETENTION_DAYS")
    return settings
