"""What every sender shares, whichever process runs it (the worker's senders, the web's worker_down watcher):
the outbox rows of a fired alert, one claimed attempt at a row with its result recorded, and the loop that
delivers one destination's rows.

One copy of the schedule: a row is delivered after a 2xx (webhooks) or apprise's success, retried after
`retry_delay` otherwise, and marked failed once `give_up_s` has passed since it fired.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from core.alerts.config import AlertSettings
from core.alerts.deliver import Outcome, payload, retry_delay, send
from core.alerts.evaluate import Alert
from core.alerts.outbox import DELIVERED, FAILED, PENDING, AlertOutbox
from core.alerts.rules import Destination
from core.changes import Stopper
from core.history.db import DB_ERRORS
from core.snapshot import now_ms

log = logging.getLogger(__name__)
CLAIM_MARGIN_S = 10.0  # a claim outlasts the longest attempt (connect + answer timeouts) by this much
DB_RETRY_S = 1.0  # the outbox's database is retried this often while it is away (or not created yet)


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    status: str          # the row's status after it: delivered, pending (retried later) or failed


def rows_for(alert: Alert, account_name: str | None, public_url: str) -> list[dict[str, Any]]:
    """One pending outbox row per destination of `alert`, each with the same body (sent verbatim each attempt)."""
    body = orjson.dumps(payload(alert, account_name, public_url)).decode()
    return [{"event_id": alert.id, "destination": destination, "rule": alert.rule, "account_index": alert.account,
             "created_ms": alert.at, "body": body, "status": PENDING, "attempts": 0, "next_at_ms": alert.at}
            for destination in alert.to]


def claim_ms(settings: AlertSettings) -> int:
    """How long a claimed attempt keeps the row from other senders: requests' timeout applies to the connect and
    to the answer separately."""
    return int((2 * settings.timeout_s + CLAIM_MARGIN_S) * 1000)


def attempt(outbox: AlertOutbox, target: Destination, row: dict[str, Any], settings: AlertSettings) -> Attempt | None:
    """Claim `row`, send it once, record the result. None when another sender claimed it first. Raises the
    database's errors (from the claim or the mark): a delivery not marked is sent again, with the same
    webhook-id, which receivers deduplicate on (docs/alerts.md)."""
    if not outbox.claim(row["id"], row["next_at_ms"], now_ms() + claim_ms(settings)):
        return None
    outcome = send(target, row["event_id"], row["body"], settings.timeout_s)
    attempts = row["attempts"] + 1
    done = now_ms()
    values: dict[str, Any] = {"attempts": attempts, "last_code": outcome.code, "last_error": outcome.error}
    if outcome.ok:
        values.update(status=DELIVERED, delivered_ms=done)
    elif done - row["created_ms"] >= settings.give_up_s * 1000:
        values.update(status=FAILED)
        log.warning("alerts: gave up on %s to %s after %d attempts", row["event_id"], target.name, attempts)
    else:
        delay = retry_delay(attempts, settings.retry_base_s, settings.retry_cap_s)
        values.update(next_at_ms=done + int(delay * 1000))
    outbox.mark(row["id"], **values)
    return Attempt(outcome, values.get("status", PENDING))


class Wake(Stopper, Protocol):
    """What `deliver` needs of its wake flag (gevent's or threading's Event): a stop flag's, and clearing it."""

    def clear(self) -> None: ...


def deliver(outbox: Callable[[], AlertOutbox], target: Destination, settings: AlertSettings, *, wake: Wake,
            stop: Stopper, idle_s: float, done: Callable[[Attempt], None], rules: Collection[str] | None = None,
            active: Callable[[], bool] = lambda: True, who: str = "alerts") -> None:
    """Deliver `target`'s pending rows (of `rules` only, when given) one at a time, oldest first (in order per
    rule), until `stop` is set. Each due row is claimed, sent and marked by `attempt`; `done` hears the result
    of each attempt this sender made (not those another sender claimed first).

    `outbox` is called for each read (the web builds it on first use, after gunicorn's fork). With nothing to
    send, or while `active()` is false or the outbox is away, the loop sleeps `idle_s` or until `wake` is set;
    a row not yet due, until it is."""
    while not stop.is_set():
        wake.clear()
        row = None
        if active():
            try:
                box = outbox()
                row = box.head(target.name, rules)
            except DB_ERRORS:
                row = None  # not created (or migrated) yet, or away: retried below
        if row is None:
            wake.wait(timeout=idle_s)
            continue
        now = now_ms()
        if row["next_at_ms"] > now:
            wake.wait(timeout=(row["next_at_ms"] - now) / 1000)
            continue
        try:
            result = attempt(box, target, row, settings)
        except DB_ERRORS as exc:
            # Not claimed, or delivered but not marked: then it is sent again after the database returns,
            # with the same webhook-id (receivers deduplicate on it: docs/alerts.md).
            log.warning("%s: outbox write for %s failed: %s", who, row["event_id"], type(exc).__name__)
            stop.wait(DB_RETRY_S)
            continue
        if result is not None:  # None: another sender (the worker's, or a web process's watcher) took it
            done(result)
