"""The change feed: what one change is, how many the store keeps, and the loop that follows them.

The worker is the single writer of a global `seq`. Each write stores the snapshot under its account key and under a
ring slot `change:{seq % FEED_SIZE}`, then bumps `head` and (Redis) publishes the snapshot (core/store.py writes and
reads them). A reader follows head and reads each slot once (or takes it from the message when caught up); a client
resuming from `since` older than the ring gets a resync. `prev_seq` is the seq of the previous change to the same
account, so a subscriber to a subset of accounts can still check it missed nothing.

`follow` is the loop behind `Store.follow`: the store opens what can wake it (Redis pub/sub, inotify on the file
store's head) and this module decides when to read head and the ring, and when a pushed change is enough.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from core.notify import HeadNotifier
from core.snapshot import Snapshot

FEED_SIZE = 4096            # changes kept for resume (about 3 minutes at 20 changes/s)
# File store: with inotify telling the follower when head moves, it still reads head this often (a missed event
# costs at most this long; WEB_FILE_POLL_S is the poll period only where inotify cannot be used).
FILE_FALLBACK_POLL_S = 1.0


class Stopper(Protocol):
    """What `follow` needs of a stop flag (gevent's or threading's Event)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: the account snapshot as written at `seq`."""

    seq: int
    snapshot: Snapshot


class Ring(Protocol):
    """What `follow` reads of the store (core.store.Store): head and the ring of changes."""

    def head(self) -> int: ...

    def changes_since(self, since: int, head: int | None = None) -> list[Change] | None: ...


def follow(ring: Ring, since: int, stop: Stopper, timeout: float, pubsub: Any, notifier: HeadNotifier | None,
           poll_interval: float) -> Iterator[list[Change] | None]:
    """Yield each batch of new changes after `since` (None = gap, caller resyncs) until `stop` is set; [] every
    `timeout`. `pubsub` (a redis PubSub subscribed to the changes channel) or `notifier` wakes it; with neither,
    it reads head every `poll_interval`. Store.follow says when each applies."""
    last_yield = time.monotonic()
    while not stop.is_set():
        head = ring.head()
        if head != since:
            caught_up = ring.changes_since(since, head)
            since = head
            last_yield = time.monotonic()
            yield caught_up
            continue
        while not stop.is_set():  # caught up
            if time.monotonic() - last_yield >= timeout:
                last_yield = time.monotonic()
                yield []
            if notifier is not None:
                left = timeout - (time.monotonic() - last_yield)
                notifier.wait(max(0.0, min(left, FILE_FALLBACK_POLL_S)))
                break
            if pubsub is None:
                stop.wait(poll_interval)
                break
            message = pubsub.get_message(timeout=min(timeout, 0.5))
            if message is None:
                break  # quiet for a while: check head, in case a message went missing
            batch: list[Change] = []
            gap = False
            while message is not None:  # what is already here goes out as one batch
                change = pushed(message)
                if change is None or change.seq > since + 1:
                    gap = True  # not readable, or after a gap: read what we missed
                    break
                if change.seq == since + 1:  # (<= since: already read while catching up)
                    since = change.seq
                    batch.append(change)
                message = pubsub.get_message(timeout=0)
            if batch:
                last_yield = time.monotonic()
                yield batch
            if gap:
                break


def pushed(message: dict[str, Any]) -> Change | None:
    """The change a pub/sub message carries, or None (an older writer's bare seq, or anything unexpected)."""
    try:
        snapshot = orjson.loads(message["data"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("seq"), int):
        return None
    return Change(snapshot["seq"], cast(Snapshot, snapshot))
