"""Process-wide logging: stdout, text or JSON lines, and a filter that masks secrets in every record."""
from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"), "level": record.levelname,
                "logger": record.name, "msg": record.getMessage()}
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
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
