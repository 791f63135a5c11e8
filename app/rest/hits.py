"""Rate-limit counts of concurrent requests sent to Redis together: one round trip for many requests.

On the shortcut's 200 path the one Redis call per request cost more worker CPU than everything else the request
does (a loopback send, a wait in the hub, a receive, redis-py's framing: about 130 µs). Requests that are ready to
run at the same moment therefore join one pipeline of the same script `RedisStorage.incr` runs (limits'
`incr_expire.lua`, same key, same arguments), so the counting is limits' own and only the transport is shared.
"""
from __future__ import annotations

from typing import Any

import gevent
from gevent.event import AsyncResult
from limits.storage import RedisStorage
from redis.exceptions import NoScriptError

Hit = tuple[str, int]  # (limits key, window seconds)


class BatchedIncr:
    """`incr(key, expiry)` like `RedisStorage.incr`; whoever finds no batch gathering starts one, yields once so
    every request ready to run can join it, then sends it and hands each joiner its count (or its error)."""

    def __init__(self, storage: RedisStorage) -> None:
        self.storage = storage
        self._gathering: list[tuple[Hit, AsyncResult]] | None = None

    def __call__(self, key: str, expiry: int) -> int:
        if self._gathering is not None:
            waiter: AsyncResult = AsyncResult()
            self._gathering.append(((key, expiry), waiter))
            joined_count: int = waiter.get()
            return joined_count
        joined = self._gathering = []
        try:
            try:
                gevent.sleep(0)  # the other greenlets already woken (requests read) run now and join
            finally:
                self._gathering = None  # later arrivals start the next batch
            counts = self._send([(key, expiry), *(hit for hit, _ in joined)])
        except BaseException as exc:
            # Joiners never wait forever, and get an error they handle even if this greenlet is being killed.
            error = exc if isinstance(exc, Exception) else ConnectionError("rate-limit batch abandoned")
            for _, waiter in joined:
                waiter.set_exception(error)
            raise
        for (_, waiter), result in zip(joined, counts[1:], strict=False):
            waiter.set_exception(result) if isinstance(result, Exception) else waiter.set(result)
        own = counts[0]
        if isinstance(own, Exception):
            raise own
        return own

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
