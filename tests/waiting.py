"""The one way tests wait: `wait_for(predicate, timeout, message, interval)`, bounded by a deadline, never a bare
sleep. Every suite's helpers (`RunningWorker.wait_for`, `Stack.wait_until`, `wait_healthy`, `wait_listening`, ...)
are thin wrappers around it.

    value = wait_for(lambda: store.account(7), 10, "account 7 in the store")
    wait_for(ping, 5, "redis answering", ignore=(redis.ConnectionError,), alive=server_alive, idle=proc_idle(proc))

Between checks it blocks on `idle(seconds)`: by default an Event that is never set (a deadline-bound wait), or
something real that wakes early: a process (`proc_idle(proc)`, returns as soon as it exits), a condition variable
(`idle=cond.wait`, with the lock held around the call), a queue.
"""
from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_REPR_LIMIT = 300


class _Missing:
    def __repr__(self) -> str:
        return "nothing (the predicate never returned)"


_NOTHING = _Missing()
# What an `idle` may raise when its own timeout expires (a Popen.wait, a Queue.get, a socket read).
_NOTHING_HAPPENED = (TimeoutError, subprocess.TimeoutExpired, queue.Empty)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + f"... ({len(text)} chars)"


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, message: str = "condition", interval: float = 0.05,
             *, ignore: tuple[type[BaseException], ...] = (), alive: Callable[[], object] | None = None,
             idle: Callable[[float], object] | None = None,
             clock: Callable[[], float] = time.monotonic) -> T:
    """Call `predicate` until it returns something truthy, and return that.

    - `timeout`: seconds from the call; the predicate is checked at least once, and once more at the deadline.
    - `message`: what is awaited, for the failure ("timed out after 5s waiting for <message>; last value: ...").
    - `interval`: the longest pause between checks (a pause never runs past the deadline).
    - `ignore`: exception types that mean "not yet" (connection refused, ...); the last one is reported.
      Any other exception propagates at once.
    - `alive`: called every round; it raises to fail fast (a process under test died). An AssertionError from it
      is re-raised prefixed with "while waiting for <message>: ".
    - `idle(seconds)`: how to pause; returns early when something happens. If it raises TimeoutError,
      subprocess.TimeoutExpired or queue.Empty at the end of its pause, that is taken as "nothing happened".
    - `clock`: for the helper's own tests.

    Raises AssertionError naming `message`, the timeout and the last value or exception seen.
    """
    pause = idle if idle is not None else threading.Event().wait
    end = clock() + timeout
    last: object = _NOTHING
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if alive is not None:
            try:
                alive()
            except AssertionError as exc:
                raise AssertionError(f"while waiting for {message}: {exc}") from None
        left = end - clock()
        if left <= 0:
            seen = f"last exception: {type(last).__name__}: {last}" if isinstance(last, BaseException) \
                else f"last value: {_short(last)}"
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}; {seen}")
        try:
            pause(min(interval, left))
        except _NOTHING_HAPPENED:
            pass  # nothing happened within the pause: check again


def proc_idle(proc: subprocess.Popen) -> Callable[[float], Any]:
    """An `idle` that waits on `proc` itself: returns at once if it exits, so a crash is noticed without delay."""
    def idle(seconds: float) -> None:
        try:
            proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            pass
    return idle


def proc_alive(proc: subprocess.Popen, what: str, log: Callable[[], str] | None = None) -> Callable[[], None]:
    """An `alive` check: raises AssertionError (with the tail of `log()`) once `proc` has exited."""
    def alive() -> None:
        if proc.poll() is not None:
            tail = "\n" + log()[-4000:] if log is not None else ""
            raise AssertionError(f"{what} exited with {proc.returncode}{tail}")
    return alive
