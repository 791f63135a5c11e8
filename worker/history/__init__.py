"""History in the worker: the recorder fed by the sink, its greenlets, the backfill loop (docs/history.md).

How it plugs in (worker/main.py): `attach(rt)` builds the recorder, hooks it to the sink (`rt.sink.on_written`),
and returns the greenlets to run. The writer lease gates it with `rt.history.pause()` / `rt.history.resume()`:
paused, nothing is derived, written or backfilled; resumed, the backfill runs at once to fill the gap.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent.event
import orjson

from core.history.db import DB_ERRORS, HistoryDB
from core.snapshot import Snapshot, now_ms
from worker.history.backfill import Backfill, BackfillError
from worker.history.recorder import HistoryRecorder
from worker.runtime import Runtime

log = logging.getLogger(__name__)
BACKFILL_OVERLAP_MS = 60_000  # refetch this far before the newest stored fill: the database skips repeats


def attach(rt: Runtime, db: HistoryDB | None = None) -> list[tuple[str, Callable[..., Any], Any]]:
    """Wire history into the worker; returns (name, function, argument) jobs for the worker's greenlet group."""
    settings = rt.settings.history
    if not settings.enabled:
        return []
    recorder = HistoryRecorder(settings, db or HistoryDB(settings.database_url.reveal()), rt.record_error, rt.clock)
    HistoryDB.load_migrations()  # now, on the main thread (see there)
    recorder.seed(_copy(state.snapshot) for state in rt.states.values())
    rt.sink.on_written = recorder.offer
    rt.history = recorder
    log.info("history: %s, sample every %gs, retention %g days", settings.redacted_url, settings.sample_s,
             settings.retention_days)
    return [("history", recorder.run, rt.stop), ("history-backfill", lambda stop: backfill_loop(rt, recorder, stop),
                                                 rt.stop)]


def _copy(snapshot: Snapshot) -> Snapshot:
    copied: Snapshot = orjson.loads(orjson.dumps(snapshot))
    return copied


def backfill_loop(rt: Runtime, recorder: HistoryRecorder, stop: gevent.event.Event) -> None:
    """At start, on resume() and every HISTORY_BACKFILL_S: fetch fills missed meanwhile, per account."""
    backfill = Backfill(rt, stop)
    settings = recorder.settings
    # Lighter's trades endpoint needs the account's token for master and sub-accounts: without a key, fills come
    # from the live feed only.
    keyed = [a for a in rt.accounts.values() if not a.public_only]
    for account in rt.accounts.values():
        if account.public_only:
            log.info("history: account %s has no key; its fills come from the live feed only (no backfill)",
                     account.account_index)
    while not stop.is_set():
        if recorder.active and recorder.migrated:
            recorder.resumed.clear()
            for account in keyed:
                try:
                    newest = recorder.db.newest_fill_ts(account.account_index)
                    since = None if newest is None else newest - BACKFILL_OVERLAP_MS
                    count = backfill.account(account, since, settings.backfill_pages, recorder.put_fills)
                    if count:
                        log.info("history backfill: %d fills fetched for account %s", count, account.account_index)
                except BackfillError as exc:
                    rt.record_error(f"history:backfill:{account.account_index}", str(exc))
                    log.warning("history backfill of account %s stopped: %s", account.account_index, exc)
                except DB_ERRORS as exc:
                    log.warning("history backfill waits for the database: %s", type(exc).__name__)
                    break
            else:
                recorder.backfilled_at_ms = now_ms()
            wait = settings.backfill_s
        else:
            wait = 0.5  # not migrated yet (database down at start) or paused
        gevent.wait([stop, recorder.resumed], timeout=wait, count=1)
