"""The `alerts` section of /api/status (docs/api.md): how many rules and destinations (never their URLs), the
outbox backlog, failures, the last delivery and the last failed attempt.

/api/status and every /ws status push ask for it, so the outbox is read at most once per `max_age_s` per process,
and not at all for RETRY_AFTER_FAILURE_S after a failed read (an unreachable PostgreSQL takes its connect timeout
to say so: once, not on every push).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from core.alerts.config import AlertSettings
from core.alerts.outbox import AlertOutbox
from core.history.db import DB_ERRORS

log = logging.getLogger(__name__)
RETRY_AFTER_FAILURE_S = 30.0


class AlertsSection:
    def __init__(self, settings: AlertSettings, outbox: Callable[[], AlertOutbox], max_age_s: float) -> None:
        self.settings = settings
        self._outbox = outbox
        self.max_age_s = max_age_s
        self._cached: dict[str, Any] | None = None
        self._next_read = float("-inf")

    def __call__(self) -> dict[str, Any]:
        base: dict[str, Any] = {"rules": len(self.settings.rules.rules),
                                "destinations": len(self.settings.rules.destinations)}
        if not self.settings.enabled:
            return {**base, "outbox": None}
        if time.monotonic() >= self._next_read:
            try:
                self._cached = {"outbox": "ok", **self._outbox().summary()}
                self._next_read = time.monotonic() + self.max_age_s
            except DB_ERRORS as exc:
                # Not created yet (the worker migrates it) or the database is away.
                log.debug("alerts status: outbox unreadable: %s", type(exc).__name__)
                self._cached = None
                self._next_read = time.monotonic() + RETRY_AFTER_FAILURE_S
        if self._cached is None:
            return {**base, "outbox": "unavailable", "backlog": None, "retrying": None, "failed": None,
                    "last_delivered": None, "last_failure": None}
        return {**base, **self._cached}
