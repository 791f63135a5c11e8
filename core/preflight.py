"""Checks at start that need the filesystem, so a bad value fails as one line naming its variable.

core.settings only parses; what a value refers to is checked here, by the entry points (worker.py, web.py,
gunicorn.conf.py), before anything else touches it.
"""
from __future__ import annotations

import os
import tempfile

from core.env import SettingsError
from core.settings import Settings


def check(settings: Settings) -> None:
    """Raise SettingsError when a setting names something this process cannot use."""
    if settings.redis_url is None:
        _writable_dir("CACHE_DIR", settings.cache_dir)


def check_web(settings: Settings) -> None:
    """The web's own rule (docs/deploy.md, WEB_CONCURRENCY): several gunicorn processes need Redis, because each
    would count RATE_LIMIT on its own in memory and give every client WEB_CONCURRENCY times its budget. The worker
    does not check it: platforms set WEB_CONCURRENCY on every dyno."""
    if settings.web_concurrency > 1 and settings.redis_url is None:
        raise SettingsError("WEB_CONCURRENCY above 1 needs REDIS_URL (rate limits are shared through Redis)")


def _writable_dir(variable: str, path: str) -> None:
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".preflight-"):
            pass
    except OSError as exc:
        raise SettingsError(f"{variable} ({path}) cannot be used as a directory: {exc.strerror or exc}") from None
