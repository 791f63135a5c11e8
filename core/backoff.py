"""One retry backoff for every loop in worker and web: random first delay, growth, cap, reset only after health."""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator


def backoff(initial: float = 1.0, factor: float = 1.618, cap: float = 30.0,
            rand: Callable[[], float] = random.random) -> Iterator[float]:
    """Delays in seconds. The first is random in [0, initial) so many clients don't reconnect in step."""
    yield initial * rand()
    delay = initial
    while True:
        yield delay
        delay = min(delay * factor, cap)


class Retry:
    """A backoff that resets only once a connection stayed healthy for `healthy_after` seconds.

    Resetting on the first frame would let a server that accepts then drops us drive a tight loop.
    """

    def __init__(self, clock: Callable[[], float], initial: float = 1.0, factor: float = 1.618,
                 cap: float = 30.0, healthy_after: float = 60.0) -> None:
        self._clock = clock
        self._args = (initial, factor, cap)
        self._delays = backoff(*self._args)
        self._healthy_after = healthy_after
        self._up_since: float | None = None
        self.failures = 0

    def up(self) -> None:
        """The connection (or request stream) works from now on."""
        if self._up_since is None:
            self._up_since = self._clock()

    def healthy(self) -> bool:
        return self._up_since is not None and self._clock() - self._up_since >= self._healthy_after

    def reset(self) -> None:
        self._delays = backoff(*self._args)
        self.failures = 0
        self._up_since = None

    def next_delay(self) -> float:
        """Call after a failure: how long to wait before the next attempt."""
        if self.healthy():
            self.reset()
        self._up_since = None
        self.failures += 1
        return next(self._delays)
