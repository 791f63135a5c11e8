"""Rate-limit counts of concurrent requests sent to Redis together: one round trip for many requests (counting on
the 200 path; reading, for a 304's X-RateLimit-*, on the 304 path).

On the shortcut's 200 path the one Redis call per request cost more worker CPU than everything else the request
does (a loopback send, a wait in the hub, a receive, redis-py's framing: about 130 µs). Requests that are ready to
run at the same moment therefore join one pipeline of the same script `RedisStorage.incr` runs (limits'
`incr_expire.lua`, same key, same arguments), so the counting is limits' own and only the transport is shared.
"""
from __future__ import annotations

from typing import Any, Generic, TypeVar

import gevent
from gevent.event import AsyncResult
from limits.storage import RedisStorage
from redis.exceptions import NoScriptError

Hit = tuple[str, int]  # (limits key, window seconds)
Item = TypeVar("Item")
Result = TypeVar("Result")


class Batched(Generic[Item, Result]):
    """`call(item)` for many greenlets, one round trip: whoever finds no batch gathering starts one, yields once so
    every request ready to run can join it, then sends it and hands each joiner its result (or its error)."""

    def __init__(self) -> None:
        self._gathering: list[tuple[Item, AsyncResult]] | None = None

    def call(self, item: Item) -> Result:
        if self._gathering is not None:
            waiter: AsyncResult = AsyncResult()
            self._gathering.append((item, waiter))
            joined_result: Result = waiter.get()
            return joined_result
        joined = self._gathering = []
        try:
            try:
                gevent.sleep(0)  # the other greenlets already woken (requests read) run now and join
            finally:
                self._gathering = None  # later arrivals start the next batch
            results = self._send([item, *(other for other, _ in joined)])
        except BaseException as exc:
            # Joiners never wait forever, and get an error they handle even if this greenlet is being killed.
            error = exc if isinstance(exc, Exception) else ConnectionError("rate-limit batch abandoned")
            for _, waiter in joined:
                waiter.set_exception(error)
            raise
        for (_, waiter), result in zip(joined, results[1:], strict=False):
            waiter.set_exception(result) if isinstance(result, Exception) else waiter.set(result)
        own = results[0]
        if isinstance(own, Exception):
            raise own
        return own

    def _send(self, items: list[Item]) -> list[Result | Exception]:
        raise NotImplementedError


class BatchedIncr(Batched[Hit, int]):
    """`incr(key, expiry)` like `RedisStorage.incr`, batched."""

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__()
        self.storage = storage

    def __call__(self, key: str, expiry: int) -> int:
        return self.call((key, expiry))

    def _send(self, hits: list[Hit]) -> list[int | Exception]:
        storage = self.storage
        # EVALSHA without redis-py's Script wrapper: that would add a SCRIPT EXISTS round trip to every pipeline.
        # A server that lost the script (restarted) answers NoScriptError: those hits go through
        # `storage.incr`, which loads it again.
        redis: Any = storage.get_connection()  # a redis.Redis; limits types it as a narrow protocol
        pipe = redis.pipeline(transaction=False)
        for key, expiry in hits:
            pipe.evalsha(storage.lua_incr_expire.sha, 1, storage.prefixed_key(key), expiry, 1)
        results = pipe.execute(raise_on_error=False)
        return [storage.incr(key, expiry) if isinstance(result, NoScriptError) else result
                for (key, expiry), result in zip(hits, results, strict=False)]


class BatchedGet(Batched[str, int]):
    """`get(key)` like `RedisStorage.get` (a window's count, 0 when none), batched: the 304s' X-RateLimit-*."""

    def __init__(self, storage: RedisStorage) -> None:
        super().__init__()
        self.storage = storage

    def __call__(self, key: str) -> int:
        return self.call(key)

    def _send(self, keys: list[str]) -> list[int | Exception]:
        redis: Any = self.storage.get_connection(True)  # the read connection, as RedisStorage.get uses
        pipe = redis.pipeline(transaction=False)
        for key in keys:
            pipe.get(self.storage.prefixed_key(key))
        return [r if isinstance(r, Exception) else int(r or 0) for r in pipe.execute(raise_on_error=False)]
