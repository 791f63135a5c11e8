"""The store contract shared by worker (writer) and web (readers): keys, status, the change feed.

This is the only module that touches the cache backend: flask-caching's backends, taken from cachelib, the library
flask-caching wraps (its `FileSystemCache` and `RedisCache` are cachelib's classes plus a Flask factory, and
importing them imports Flask, which the worker must not). FileSystemCache by default (embedded, no server),
RedisCache when REDIS_URL is set; both store exactly what flask-caching's would. Values are orjson-encoded bytes,
so what we store is JSON-safe by construction (cachelib pickles values; bytes keep that harmless and fast).
The snapshot schema is core.snapshot's.

Change feed: the worker is the single writer of a global `seq`. Each write stores the snapshot under its account
key and under a ring slot `change:{seq % FEED_SIZE}`, then bumps `head` and (Redis) publishes the snapshot. A
reader follows head and reads each slot once (or takes it from the message when caught up); a client resuming
from `since` older than the ring gets a resync. `prev_seq` is the seq of the previous change to the same
account, so a subscriber to a subset of accounts can still check it missed nothing.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, cast

import orjson

from core.settings import Settings
from core.snapshot import Snapshot, now_ms

FEED_SIZE = 4096            # changes kept for resume (about 3 minutes at 20 changes/s)
STATUS_TTL = 120            # seconds; the status record vanishes if the worker is gone this long
HEARTBEAT_DOWN_AFTER = 3.0  # seconds without a heartbeat before the web reports the worker down
NEVER = 0                   # cachelib: timeout 0 means never expire (snapshots are never deleted)
STORE_KEY_PREFIX = "lb:"     # every key we write in a shared Redis starts with it
StatusRecord = dict[str, Any]  # the worker's status record (schema in docs/worker.md), passed through as written


class Stopper(Protocol):
    """What `follow` needs of a stop flag (gevent's or threading's Event)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: the account snapshot as written at `seq`."""

    seq: int
    snapshot: Snapshot


def make_backend(settings: Settings) -> tuple[Any, Any]:
    """The cache backend for these settings, and the Redis client behind it (None for the file store)."""
    if settings.redis_url:
        import redis
        from cachelib import RedisCache

        # Blocking pool: under gevent every greenlet needs its own connection, and a burst of /ws syncs would
        # exhaust a plain pool ("Too many connections" dropped 802 of 1,000 reconnecting clients). Waiting for a
        # free connection for a few seconds is the right back-pressure.
        pool = redis.BlockingConnectionPool.from_url(settings.redis_url.reveal(), max_connections=64, timeout=10,
                                                     socket_timeout=5, socket_connect_timeout=5,
                                                     health_check_interval=30, **settings.redis_tls_options())
        client = redis.Redis(connection_pool=pool)
        # The prefix matters: cachelib's clear() without one is FLUSHDB on a database we may share.
        return RedisCache(host=client, key_prefix=STORE_KEY_PREFIX, default_timeout=NEVER), client
    from cachelib import FileSystemCache

    os.makedirs(settings.cache_dir, mode=0o700, exist_ok=True)
    os.chmod(settings.cache_dir, 0o700)  # pickled values: only we may write here
    # threshold=0: no shared counter file rewritten on each set (races between processes), no pruning.
    return FileSystemCache(settings.cache_dir, threshold=0, default_timeout=NEVER, mode=0o600), None


class Store:
    """Typed access to the shared cache. Worker calls the write half, web the read half."""

    def __init__(self, cache: Any, redis_client: Any = None, poll_interval: float = 0.02) -> None:
        # `cache` is a cachelib backend and `redis_client` a redis.Redis: untyped libraries, kept behind this class.
        self._cache = cache
        self._redis = redis_client
        self._poll_interval = poll_interval

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        cache, client = make_backend(settings)
        return cls(cache, client, settings.web.file_poll_s)

    @property
    def kind(self) -> str:
        return "redis" if self._redis is not None else "file"

    # -- encoding ---------------------------------------------------------------------------------------------
    def _get(self, key: str) -> Any:
        raw = self._cache.get(key)
        return None if raw is None else orjson.loads(raw)

    def _set(self, key: str, value: Any, timeout: int = NEVER) -> None:
        if not self._cache.set(key, orjson.dumps(value), timeout=timeout):
            raise StoreError(f"store refused to write {key!r}")

    # -- worker side ------------------------------------------------------------------------------------------
    def set_tracked(self, indexes: list[int]) -> None:
        """Which accounts the worker tracks (the web's list of accounts, in configuration order)."""
        self._set("accounts", list(indexes))

    def put_account(self, snapshot: Snapshot, seq: int) -> None:
        """Write one account snapshot as change `seq` (the caller owns the counter; see head())."""
        self.put_accounts([(snapshot, seq)])

    def put_accounts(self, writes: list[tuple[Snapshot, int]]) -> None:
        """Write several account snapshots as consecutive changes, in order, in one round trip (and, on Redis, one
        more for their messages). A web watcher then fans them out together: one write per client, not one each.
        """
        if not writes:
            return
        entries: dict[str, bytes] = {}
        messages = []
        for snapshot, seq in writes:
            encoded = orjson.dumps({**snapshot, "seq": seq, "written_at": now_ms()})
            entries[f"account:{snapshot['account_index']}"] = encoded
            entries[f"change:{seq % FEED_SIZE}"] = encoded
            messages.append(encoded)
        # Readers go by head, so every slot is written before head points at it (cachelib pipelines set_many on
        # Redis, in this order).
        entries["head"] = orjson.dumps(writes[-1][1])
        written = self._cache.set_many(entries)
        if len(written) != len(entries):
            raise StoreError(f"store refused to write changes {writes[0][1]}..{writes[-1][1]}")
        if self._redis is not None:
            # Each message carries its change: a follower that is caught up needs no reads (see follow).
            pipe = self._redis.pipeline(transaction=False)
            for encoded in messages:
                pipe.publish(STORE_KEY_PREFIX + "changes", encoded)
            pipe.execute()

    def put_status(self, status: StatusRecord) -> None:
        self._set("status", {**status, "heartbeat_at": now_ms()}, timeout=STATUS_TTL)

    # -- web side ---------------------------------------------------------------------------------------------
    def tracked(self) -> list[int]:
        return cast(list[int], self._get("accounts") or [])

    def populated(self) -> bool:
        """False until the worker has written its account list (first start, or an empty Redis after a restart)."""
        return bool(self._cache.has("accounts"))

    def account(self, index: int) -> Snapshot | None:
        return cast(Snapshot | None, self._get(f"account:{index}"))

    def accounts(self) -> list[Snapshot]:
        keys = [f"account:{i}" for i in self.tracked()]
        return [orjson.loads(raw) for raw in self._cache.get_many(*keys) if raw is not None] if keys else []

    def status(self) -> StatusRecord | None:
        return cast(StatusRecord | None, self._get("status"))

    def head(self) -> int:
        return cast(int, self._get("head") or 0)

    def changes_since(self, since: int, head: int | None = None) -> list[Change] | None:
        """Changes after `since` up to head, oldest first; None if some were already overwritten (resync)."""
        head = self.head() if head is None else head
        if since >= head:
            return [] if since == head else None  # head moved backwards: the store was reset
        if head - since > FEED_SIZE:
            return None
        keys = [f"change:{s % FEED_SIZE}" for s in range(since + 1, head + 1)]
        changes = []
        for expected, raw in zip(range(since + 1, head + 1), self._cache.get_many(*keys), strict=True):
            snapshot = None if raw is None else orjson.loads(raw)
            if snapshot is None or snapshot.get("seq") != expected:
                return None
            changes.append(Change(expected, cast(Snapshot, snapshot)))
        return changes

    def follow(self, since: int, stop: Stopper, timeout: float = 1.0) -> Iterator[list[Change] | None]:
        """Yield each batch of new changes after `since` (None = gap, caller resyncs) until `stop` is set.

        Catching up reads `head` and the ring. Once caught up, Redis pub/sub messages carry each next change, so
        a live follower reads nothing; a message out of order (one was missed, or an older worker published only
        the seq) sends it back to reading. The file store polls `head` (≈150 µs a read). Yields [] every
        `timeout` so callers can do periodic work (heartbeats, status pushes).
        """
        pubsub = None
        if self._redis is not None:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(STORE_KEY_PREFIX + "changes")
        try:
            last_yield = time.monotonic()
            while not stop.is_set():
                head = self.head()
                if head != since:
                    caught_up = self.changes_since(since, head)
                    since = head
                    last_yield = time.monotonic()
                    yield caught_up
                    continue
                while not stop.is_set():  # caught up
                    if time.monotonic() - last_yield >= timeout:
                        last_yield = time.monotonic()
                        yield []
                    if pubsub is None:
                        stop.wait(self._poll_interval)
                        break
                    message = pubsub.get_message(timeout=min(timeout, 0.5))
                    if message is None:
                        break  # quiet for a while: check head, in case a message went missing
                    batch: list[Change] = []
                    gap = False
                    while message is not None:  # what is already here goes out as one batch
                        change = _pushed(message)
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
        finally:
            if pubsub is not None:
                pubsub.close()


def _pushed(message: dict[str, Any]) -> Change | None:
    """The change a pub/sub message carries, or None (an older writer's bare seq, or anything unexpected)."""
    try:
        snapshot = orjson.loads(message["data"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("seq"), int):
        return None
    return Change(snapshot["seq"], cast(Snapshot, snapshot))


class StoreError(RuntimeError):
    """The backend refused a write (disk full, Redis down...)."""
