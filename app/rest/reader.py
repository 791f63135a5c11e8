"""The one read path of REST (/api/*, /api/v1/*, the pre-Flask shortcut): which snapshot is served, and when an
account is not tracked or the store holds nothing yet.

The mirror answers while the store watcher is in sync; otherwise (and for anything the mirror does not hold) the
store does, so a store outage raises from here and each route answers it its own way (503, or Lighter's error).
"""
from __future__ import annotations

from dataclasses import dataclass

from app.feed.watcher import Watcher
from core.snapshot import Snapshot
from core.store import Store, StoreError


@dataclass(frozen=True)
class NotTracked:
    """The account is not one the worker tracks (or has no snapshot yet)."""

    index: int


@dataclass(frozen=True)
class NotPopulated:
    """Kept for callers' isinstance checks; `Reader` raises `Unpopulated` instead (every route answers 503)."""


class Unpopulated(StoreError):
    """The store lacks the tracked list (first start, an emptied Redis, a deleted CACHE_DIR, an unreadable value):
    every route answers 503 with Retry-After (the StoreError handler) until the worker rewrites it, never an
    empty list or a 404."""

    def __init__(self) -> None:
        super().__init__("the store holds no tracked-account list yet; the worker has not (re)written it")


Account = Snapshot | NotTracked | NotPopulated


class Reader:
    def __init__(self, store: Store, watcher: Watcher) -> None:
        self.store = store
        self.watcher = watcher

    def held(self, index: int) -> Snapshot | None:
        """The tracked account from memory when the mirror may be trusted; None means "ask `account`" (the
        pre-Flask shortcut then lets Flask answer). Never reads the store beyond the mirror's periodic refresh."""
        mirror = self.watcher.serving()
        return None if mirror is None else mirror.account(index)

    def held_accounts(self) -> list[Snapshot] | None:
        """Every tracked account from memory when the mirror may be trusted, else None."""
        mirror = self.watcher.serving()
        return None if mirror is None else mirror.accounts()

    def account(self, index: int) -> Account:
        """The account's snapshot, or why there is none. Store errors propagate."""
        snapshot = self.held(index)
        if snapshot is not None:
            return snapshot
        store = self.store
        if not store.populated():
            raise Unpopulated()
        snapshot = store.account(index)
        if snapshot is None or index not in store.tracked():
            return NotTracked(index)
        return snapshot

    def accounts(self) -> list[Snapshot]:
        """Every tracked account with a snapshot, in tracked order. Store errors (and Unpopulated) propagate."""
        held = self.held_accounts()
        if held is not None:
            return held
        if not self.store.populated():
            raise Unpopulated()
        return self.store.accounts()
