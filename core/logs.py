"""Process-wide logging: stdout, text or JSON lines, and a filter that masks secrets in every record.

Both formats stamp records in ISO 8601 with milliseconds and the time zone (UTC). JSON lines also carry the
structured fields a call passes with `extra=fields(event=..., account=..., egress=...)`."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

# Lighter auth tokens and any 80-hex private key look like this whether or not we were told about them.
_TOKEN = re.compile(r"\b\d+:\d+:\d+:[0-9a-fA-F]{160}\b")
_HEX_KEY = re.compile(r"\b(0x)?[0-9a-fA-F]{80}\b")
_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
MASK = "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask known secret values and anything shaped like a token, key or URL password."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    text = _TOKEN.sub(MASK, text)
    text = _HEX_KEY.sub(MASK, text)
    return _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + "@", text)


class RedactingFilter(logging.Filter):
    """Renders each record's message once, masked, so no handler can print a secret."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info), self.secrets)
            record.exc_info = None
        return True


# Structured fields a log call may carry (`extra=fields(...)`); JSON lines show them as keys of their own.
FIELDS = ("event", "account", "egress", "client", "route")
_FIELD_ATTR = "lb_fields"


def fields(**values: object) -> dict[str, dict[str, object]]:
    """`log.info(..., extra=fields(event="worker_down", account=7))`: machine-readable fields beside the message
    (None values are left out). Unknown names are a programming error, caught here rather than in a dashboard."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise ValueError(f"unknown log fields: {sorted(unknown)}")
    return {_FIELD_ATTR: {k: v for k, v in values.items() if v is not None}}


def iso_time(created: float) -> str:
    """ISO 8601, UTC, with milliseconds and the zone: 2026-12-01T02:29:40.123+00:00."""
    return datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging's name
        return iso_time(record.created)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"ts": iso_time(record.created), "level": record.levelname,
                                   "logger": record.name, "msg": record.getMessage()}
        for key, value in getattr(record, _FIELD_ATTR, {}).items():
            line[key] = value if isinstance(value, (int, float, bool)) else redact(str(value))
        if record.exc_text:
            line["exc"] = record.exc_text
        return orjson.dumps(line).decode()


def configure_logging(log_format: str = "text", level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once per process."""
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(RedactingFilter(secrets))
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
