"""A per-process copy of what REST serves: the newest snapshot per account, the tracked list, `populated`.

The process's one store watcher (app/feed/watcher.py) already reads every change once and every resync; it hands
them to `apply`/`reset` so REST requests need no store reads at all. The copy is only as good as the watcher:
`Watcher.serving()` returns it only while the watcher is in sync (running, no pending resync after a store error),
and REST falls back to reading the store otherwise (app/rest/reader.py), so every existing semantic (503 store
down, 503 not populated, 404 untracked) still comes from the store path.

The copy may trail the store by one watcher wake-up (pub/sub on Redis, one head poll on the file store), the same
lag /ws clients see. Freshness (`age_ms`/`stale`) is never stored here: callers compute it at request time.
"""
from __future__ import annotations

import logging
import time

from core.snapshot import Snapshot
from core.store import Change, Store

log = logging.getLogger(__name__)


class Mirror:
    """Snapshots by account plus the tracked list; written only by the store watcher (and its start)."""

    def __init__(self, store: Store, max_age_s: float) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self.loaded = False
        self._snapshots: dict[int, Snapshot] = {}
        self._tracked: list[int] = []
        self._tracked_set: frozenset[int] = frozenset()
        self._populated = False
        self._tracked_at = float("-inf")

    # -- writers (the watcher) ---------------------------------------------------------------------------------
    def reset(self) -> list[Snapshot]:
        """Reload everything from the store (watcher start, resync after a gap or an outage) and return the
        snapshots read, in tracked order. May raise: the caller's resync then fails and is retried, and the mirror
        stays untrusted meanwhile."""
        self.loaded = False
        populated, tracked = self.store.populated(), self.store.tracked()
        read = self.store.accounts()
        # Swapped in one step with no yield in between: requests see the old or the new copy, never a mix.
        self._snapshots = {s["account_index"]: s for s in read}
        self._set_tracked(populated, tracked)
        self.loaded = True
        return read

    def apply(self, batch: list[Change]) -> None:
        """The changes of one feed batch. Only newer seqs win: the start-up load may already hold a change that
        the feed delivers again (a store reset, where seqs restart, always goes through `reset`)."""
        for change in batch:
            snapshot = change.snapshot
            index = snapshot["account_index"]
            current = self._snapshots.get(index)
            if current is None or change.seq > current.get("seq", 0):
                self._snapshots[index] = snapshot

    def _set_tracked(self, populated: bool, tracked: list[int]) -> None:
        self._populated, self._tracked, self._tracked_set = populated, list(tracked), frozenset(tracked)
        self._tracked_at = time.monotonic()

    # -- readers (requests) ------------------------------------------------------------------------------------
    def fresh(self) -> bool:
        """Re-read the tracked list and the account keys at most once per `max_age_s` (three reads).

        The tracked list has no change feed (the worker writes it at start), and an account key can hold a
        version the feed never announced (a worker killed between the two writes of `put_account`): REST has
        always served the account keys, so the mirror converges to them too (newer seq wins, as in `apply`).
        False when the reads fail or the store is not populated: callers fall back to the store path.
        """
        if time.monotonic() - self._tracked_at > self.max_age_s:
            self._tracked_at = time.monotonic()  # before the read: concurrent requests must not all re-read
            try:
                populated, tracked, snapshots = self.store.populated(), self.store.tracked(), self.store.accounts()
                self._set_tracked(populated, tracked)
                self.apply([Change(s.get("seq", 0), s) for s in snapshots])
            except Exception:  # noqa: BLE001 - the store path will answer (503) and log
                log.debug("mirror: tracked list unreadable", exc_info=True)
                self._tracked_at = float("-inf")
                return False
        return self._populated

    def tracked(self) -> list[int]:
        """The tracked accounts, in configuration order (as `Store.tracked()`)."""
        return list(self._tracked)

    def account(self, index: int) -> Snapshot | None:
        """The tracked account's snapshot, or None (untracked, not written yet): callers then ask the store,
        which gives today's 404/503 answers."""
        if index not in self._tracked_set:
            return None
        return self._snapshots.get(index)

    def accounts(self) -> list[Snapshot]:
        """Like `Store.accounts()`: tracked order, accounts without a snapshot left out."""
        snapshots = self._snapshots
        return [snapshots[i] for i in self._tracked if i in snapshots]
