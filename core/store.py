"""The store contract shared by worker (writer) and web (readers): keys, status, the change feed.

This is the only module that touches the cache backend: flask-caching's backends, taken from cachelib, the library
flask-caching wraps (its `FileSystemCache` and `RedisCache` are cachelib's classes plus a Flask factory, and
importing them imports Flask, which the worker must not). FileSystemCache by default (embedded, no server),
RedisCache when REDIS_URL is set. Values are orjson-encoded JSON, stored as plain bytes through our serializer
(core.codec): cachelib would pickle them, and unpickle whatever it reads. A value that is not JSON (garbage, a
truncated file, a planted pickle) is never executed: it reads as missing, is logged once, and the worker heals it.
The snapshot schema is core.snapshot's.

Writes are fenced by the writer lease (core.lease) once the worker holds one: on Redis each write is one Lua
script that checks the lease token and then writes (and publishes); on files the lock file is checked first.

The change feed (the ring of changes under `change:{seq % FEED_SIZE}`, `head`, the pub/sub channel) is written
and read here; what a change is and the loop that follows them are core/changes.py's.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any, NamedTuple, cast

import orjson

from core import changes
from core.changes import FEED_SIZE, Change, Stopper  # part of the store's interface: its users import them here
from core.codec import BytesSerializer, CorruptValue, decode
from core.lease import FileLease, Lease, LeaseLost, RedisLease
from core.notify import open_notifier
from core.settings import Settings
from core.snapshot import Snapshot, now_ms

log = logging.getLogger(__name__)

STANDBY_TTL = 5             # seconds; a standby's record vanishes this long after it stopped renewing it
STATUS_TTL = 120            # seconds; the status record vanishes if the worker is gone this long
HEARTBEAT_DOWN_AFTER = 3.0  # seconds without a heartbeat before the web reports the worker down
NEVER = 0                   # cachelib: timeout 0 means never expire (snapshots are never deleted)
STORE_KEY_PREFIX = "lb:"     # every key we write in a shared Redis starts with it
StatusRecord = dict[str, Any]  # the worker's status record (schema in docs/worker.md), passed through as written


class Record(NamedTuple):
    """One account snapshot as the store holds it: the change at `seq`, encoded (what readers decode)."""

    account: int
    seq: int
    data: bytes


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
        cache: Any = RedisCache(host=client, key_prefix=STORE_KEY_PREFIX, default_timeout=NEVER)
        cache.serializer = BytesSerializer()  # plain bytes, never pickle (core.codec)
        return cache, client
    from cachelib import FileSystemCache

    os.makedirs(settings.cache_dir, mode=0o700, exist_ok=True)
    os.chmod(settings.cache_dir, 0o700)  # only our processes may write here
    # threshold=0: no shared counter file rewritten on each set (races between processes), no pruning.
    files: Any = FileSystemCache(settings.cache_dir, threshold=0, default_timeout=NEVER, mode=0o600)
    files.serializer = BytesSerializer()
    return files, None


# One fenced write on Redis: KEYS = [lease, key...], ARGV = [token, ttl_s (0: none), channel, value..., message...].
_FENCED_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[2])
local n = #KEYS - 1
for i = 1, n do
  if ttl > 0 then redis.call('SET', KEYS[i + 1], ARGV[i + 3], 'EX', ttl)
  else redis.call('SET', KEYS[i + 1], ARGV[i + 3]) end
end
for i = n + 4, #ARGV do redis.call('PUBLISH', ARGV[3], ARGV[i]) end
return 1
"""


class Store:
    """Typed access to the shared cache. Worker calls the write half, web the read half."""

    def __init__(self, cache: Any, redis_client: Any = None, poll_interval: float = 0.02,
                 cache_dir: str | None = None) -> None:
        # `cache` is a cachelib backend and `redis_client` a redis.Redis: untyped libraries, kept behind this class.
        self._cache = cache
        self._redis = redis_client
        self._poll_interval = poll_interval
        self._cache_dir = cache_dir
        self.fence: Lease | None = None  # the worker's lease: once set, every write is refused without it
        self._corrupt: set[str] = set()  # keys whose unreadable value was logged (once per occurrence)
        self._fenced = redis_client.register_script(_FENCED_WRITE) if redis_client is not None else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        cache, client = make_backend(settings)
        return cls(cache, client, settings.web.file_poll_s, None if client is not None else settings.cache_dir)

    def lease(self, owner: str, ttl_s: float) -> Lease:
        """A writer lease on this store (not yet taken); the worker sets it as `fence` once it holds it."""
        if self._redis is not None:
            return RedisLease(self._redis, STORE_KEY_PREFIX, ttl_s, owner)
        assert self._cache_dir is not None
        return FileLease(self._cache_dir, owner)

    def probe(self) -> None:
        """Raise StoreError unless the store can be read and written (health: `store_reachable`)."""
        if self._redis is not None:
            self._redis.ping()
        elif self._cache_dir is not None and not os.access(self._cache_dir, os.R_OK | os.W_OK | os.X_OK):
            raise StoreError("the store directory is missing or not writable")

    @property
    def kind(self) -> str:
        return "redis" if self._redis is not None else "file"

    # -- encoding ---------------------------------------------------------------------------------------------
    def _decode(self, key: str, raw: bytes | None) -> Any:
        """The JSON value, or None when missing or unreadable (logged once until the key reads fine again)."""
        if raw is None:
            return None
        try:
            value = decode(raw)
        except CorruptValue as exc:
            if key not in self._corrupt:
                self._corrupt.add(key)
                log.warning("store: value of %r is unreadable (%s); treated as missing", key, exc)
            return None
        self._corrupt.discard(key)
        return value

    def _get(self, key: str) -> Any:
        return self._decode(key, self._cache.get(key))

    def _set(self, key: str, value: Any, timeout: int = NEVER) -> None:
        self._write({key: orjson.dumps(value)}, timeout)

    def _write(self, entries: dict[str, bytes], timeout: int = NEVER, messages: list[bytes] | None = None) -> None:
        """Write `entries` in order (and, on Redis, publish `messages`), in one round trip. With a fence, the
        store refuses the write unless the lease is still ours (LeaseLost)."""
        fence = self.fence
        if fence is not None and self._fenced is not None:
            assert isinstance(fence, RedisLease)
            fence.check()
            keys = [fence.key] + [STORE_KEY_PREFIX + k for k in entries]
            args = [fence.token, timeout, STORE_KEY_PREFIX + "changes", *entries.values(), *(messages or [])]
            if not int(self._fenced(keys=keys, args=args)):
                fence.epoch = None
                raise LeaseLost("the store refused the write: the writer lease is gone or someone else's")
            return
        if fence is not None:
            fence.check()
        written = self._cache.set_many(entries, timeout=timeout)
        if len(written) != len(entries):
            raise StoreError(f"store refused to write {', '.join(entries)[:80]}")
        if messages and self._redis is not None:
            pipe = self._redis.pipeline(transaction=False)
            for encoded in messages:
                pipe.publish(STORE_KEY_PREFIX + "changes", encoded)
            pipe.execute()

    # -- worker side ------------------------------------------------------------------------------------------
    def set_tracked(self, indexes: list[int]) -> None:
        """Which accounts the worker tracks (the web's list of accounts, in configuration order)."""
        self._set("accounts", list(indexes))

    def put_account(self, snapshot: Snapshot, seq: int) -> None:
        """Write one account snapshot as change `seq` (the caller owns the counter; see head())."""
        self.put_accounts([(snapshot, seq)])

    def put_accounts(self, writes: list[tuple[Snapshot, int]], tracked: list[int] | None = None) -> None:
        """Write several account snapshots as consecutive changes, in order, in one round trip (publishing
        included). A web watcher then fans them out together: one write per client, not one each.

        `tracked`, when given, is written with them, after the account keys: a rewrite of an emptied store never
        shows the tracked list before its accounts (REST would answer 404 "not tracked" in between).
        """
        self.put_records(self.records(writes), tracked)

    def records(self, writes: list[tuple[Snapshot, int]]) -> list[Record]:
        """Each write as it will be stored, encoded now and without yielding: the caller may change the snapshots
        as soon as this returns, whatever then happens to the write."""
        epoch = {"epoch": self.fence.epoch} if self.fence is not None else {}
        return [Record(snapshot["account_index"], seq,
                       orjson.dumps({**snapshot, "seq": seq, "written_at": now_ms(), **epoch}))
                for snapshot, seq in writes]

    def put_records(self, records: list[Record], tracked: list[int] | None = None) -> None:
        """Write `records` (from `records()`) as put_accounts does."""
        if not records:
            if tracked is not None:
                self.set_tracked(tracked)
            return
        entries: dict[str, bytes] = {}
        for record in records:
            entries[f"account:{record.account}"] = record.data
            entries[f"change:{record.seq % FEED_SIZE}"] = record.data
        if tracked is not None:
            entries["accounts"] = orjson.dumps(list(tracked))
        # Readers go by head, so every slot is written before head points at it (in this order on both backends).
        entries["head"] = orjson.dumps(records[-1].seq)
        try:
            self._write(entries, messages=[record.data for record in records])  # each message carries its change
        except StoreError as exc:
            raise StoreError(f"store refused to write changes {records[0].seq}..{records[-1].seq}") from exc

    def put_status(self, status: StatusRecord) -> None:
        self._set("status", {**status, "heartbeat_at": now_ms()}, timeout=STATUS_TTL)

    def put_standby(self, record: StatusRecord) -> None:
        """A waiting worker says it is there (never fenced: it writes nothing else). Expires unless renewed."""
        raw = orjson.dumps({**record, "heartbeat_at": now_ms()})
        if not self._cache.set("standby", raw, timeout=STANDBY_TTL):
            raise StoreError("store refused to write 'standby'")

    # -- web side ---------------------------------------------------------------------------------------------
    def tracked(self) -> list[int]:
        value = self._get("accounts")
        return cast(list[int], value) if isinstance(value, list) else []

    def populated(self) -> bool:
        """False until the worker has written its account list (first start, an emptied store, an unreadable
        list): REST then answers 503, never an empty list."""
        return isinstance(self._get("accounts"), list)

    def standby(self) -> StatusRecord | None:
        """The waiting worker's record, if one waits (see put_standby)."""
        return cast(StatusRecord | None, self._get("standby"))

    def lost(self, tracked: list[int], seq: int | None) -> str | None:
        """What the store lost of what the writer holds (one read): None if intact, else what is missing."""
        keys = ["accounts", "head"] + [f"account:{i}" for i in tracked]
        values = [self._decode(k, raw) for k, raw in zip(keys, self._cache.get_many(*keys), strict=True)]
        if values[0] != tracked:
            return "the tracked list"
        if seq and (not isinstance(values[1], int) or values[1] < seq):
            return "head"
        missing = [k for k, v in zip(keys[2:], values[2:], strict=True) if not isinstance(v, dict)]
        return ", ".join(missing) if missing and seq else None

    def account(self, index: int) -> Snapshot | None:
        value = self._get(f"account:{index}")
        return cast(Snapshot, value) if isinstance(value, dict) else None

    def accounts(self) -> list[Snapshot]:
        keys = [f"account:{i}" for i in self.tracked()]
        values = [self._decode(k, raw) for k, raw in zip(keys, self._cache.get_many(*keys), strict=True)]
        return [cast(Snapshot, v) for v in values if isinstance(v, dict)]

    def status(self) -> StatusRecord | None:
        return cast(StatusRecord | None, self._get("status"))

    def head(self) -> int:
        value = self._get("head")
        return value if isinstance(value, int) else 0

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
            snapshot = self._decode(f"change:{expected % FEED_SIZE}", raw)
            if not isinstance(snapshot, dict) or snapshot.get("seq") != expected:
                return None
            changes.append(Change(expected, cast(Snapshot, snapshot)))
        return changes

    def follow(self, since: int, stop: Stopper, timeout: float = 1.0) -> Iterator[list[Change] | None]:
        """Yield each batch of new changes after `since` (None = gap, caller resyncs) until `stop` is set.

        Catching up reads `head` and the ring. Once caught up, Redis pub/sub messages carry each next change, so
        a live follower reads nothing; a message out of order (one was missed, or an older worker published only
        the seq) sends it back to reading. The file store reads `head` (≈150 µs) when inotify says its file was
        replaced (core/notify.py), and at least every FILE_FALLBACK_POLL_S anyway; without inotify it polls `head`
        every `poll_interval` (WEB_FILE_POLL_S). Yields [] every `timeout` so callers can do periodic work
        (heartbeats, status pushes).
        """
        pubsub = None
        notifier = None
        if self._redis is not None:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(STORE_KEY_PREFIX + "changes")
        elif self._cache_dir is not None:
            # Watching starts before head is first read: a write in between is a pending event, not a miss.
            notifier = open_notifier(self._cache_dir, self._head_path())
        try:
            yield from changes.follow(self, since, stop, timeout, pubsub, notifier, self._poll_interval)
        finally:
            if pubsub is not None:
                pubsub.close()
            if notifier is not None:
                notifier.close()

    def _head_path(self) -> str | None:
        """The file of the file store holding `head` (cachelib names files by a hash of the key), if it says."""
        name_of = getattr(self._cache, "_get_filename", None)
        return name_of("head") if callable(name_of) else None


class StoreError(RuntimeError):
    """The backend refused a write (disk full, Redis down...)."""
