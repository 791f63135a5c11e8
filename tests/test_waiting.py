"""tests/waiting.py: the deadline is honoured, the value is returned, a failure says what was awaited and what was
last seen. Time is a fake clock advanced by the pauses themselves, so nothing here sleeps on a fixed time."""
from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time

import pytest

from tests.waiting import proc_alive, proc_idle, wait_for


class FakeTime:
    """A clock that only moves when wait_for pauses: `idle(t)` advances it by exactly t."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def idle(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def counting(results):
    """A predicate returning `results` one by one (the last one forever), counting its calls."""
    calls = []

    def predicate():
        calls.append(1)
        return results[min(len(calls), len(results)) - 1]
    return predicate, calls


def test_returns_the_first_truthy_value_without_pausing_after_it():
    fake = FakeTime()
    predicate, calls = counting([None, 0, {"seq": 3}, {"seq": 4}])
    assert wait_for(predicate, 10, "seq", interval=0.5, idle=fake.idle, clock=fake.clock) == {"seq": 3}
    assert len(calls) == 3 and fake.pauses == [0.5, 0.5]


def test_the_deadline_is_honoured_and_checked_once_more_at_it():
    fake = FakeTime()
    predicate, calls = counting([False])
    with pytest.raises(AssertionError):
        wait_for(predicate, 1.0, "never", interval=0.3, idle=fake.idle, clock=fake.clock)
    assert fake.now == pytest.approx(1.0)  # no pause ran past the deadline
    assert fake.pauses == pytest.approx([0.3, 0.3, 0.3, 0.1])
    assert len(calls) == 5  # at 0, 0.3, 0.6, 0.9 and at the deadline itself


def test_a_zero_timeout_still_checks_once():
    predicate, calls = counting(["ready"])
    assert wait_for(predicate, 0, "ready") == "ready" and len(calls) == 1


def test_the_failure_names_what_was_awaited_the_timeout_and_the_last_value():
    fake = FakeTime()
    predicate, _ = counting([[], {}, []])
    with pytest.raises(AssertionError) as caught:
        wait_for(predicate, 2.5, "account 7 in the store", idle=fake.idle, clock=fake.clock)
    assert str(caught.value) == "timed out after 2.5s waiting for account 7 in the store; last value: []"


def test_a_long_last_value_is_shortened():
    class Falsy:
        def __bool__(self) -> bool:
            return False

        def __repr__(self) -> str:
            return "z" * 1000

    fake = FakeTime()
    with pytest.raises(AssertionError) as caught:
        wait_for(Falsy, 1, "long", idle=fake.idle, clock=fake.clock)
    assert "(1000 chars)" in str(caught.value) and len(str(caught.value)) < 500


def test_ignored_exceptions_mean_not_yet_and_the_last_one_is_reported():
    fake = FakeTime()
    outcomes = iter([ConnectionRefusedError("refused"), None, ConnectionResetError("reset")])

    def predicate():
        outcome = next(outcomes, ConnectionResetError("reset"))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome
    with pytest.raises(AssertionError) as caught:
        wait_for(predicate, 1, "the port", ignore=(OSError,), idle=fake.idle, clock=fake.clock)
    assert str(caught.value).endswith("last exception: ConnectionResetError: reset")

    outcomes = iter([ConnectionRefusedError("refused"), "up"])
    assert wait_for(predicate, 1, "the port", ignore=(OSError,), idle=fake.idle, clock=fake.clock) == "up"


def test_other_exceptions_propagate_at_once():
    fake = FakeTime()
    calls = []

    def predicate():
        calls.append(1)
        raise KeyError("seq")
    with pytest.raises(KeyError):
        wait_for(predicate, 10, "seq", ignore=(OSError,), idle=fake.idle, clock=fake.clock)
    assert len(calls) == 1 and fake.now == 0


def test_alive_fails_fast():
    fake = FakeTime()

    def alive():
        if fake.now >= 0.2:
            raise AssertionError("worker exited with 1")
    with pytest.raises(AssertionError, match="^while waiting for never: worker exited with 1$"):
        wait_for(lambda: False, 10, "never", interval=0.1, alive=alive, idle=fake.idle, clock=fake.clock)
    assert fake.now == pytest.approx(0.2)


def test_an_idle_that_times_out_by_raising_counts_as_nothing_happened():
    fake = FakeTime()

    def idle(seconds):
        fake.idle(seconds)
        raise [subprocess.TimeoutExpired("x", seconds), TimeoutError(), queue.Empty()][len(fake.pauses) % 3]
    predicate, calls = counting([0, 0, 0, "done"])
    assert wait_for(predicate, 5, "done", idle=idle, clock=fake.clock) == "done" and len(calls) == 4


def test_real_clock_the_deadline_bounds_the_wait():
    started = time.monotonic()
    with pytest.raises(AssertionError, match="waiting for nothing"):
        wait_for(lambda: None, 0.2, "nothing", interval=0.05)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 5  # generous upper bound: a loaded machine may be slow to wake us


def test_a_condition_variable_wakes_the_wait_early():
    cond = threading.Condition()
    box: list[str] = []

    def produce():
        with cond:
            box.append("ready")
            cond.notify_all()
    started = time.monotonic()
    with cond:
        threading.Thread(target=produce).start()
        # interval is long: only the notify can make this return quickly
        assert wait_for(lambda: box and box[0], 30, "the producer", interval=30, idle=cond.wait) == "ready"
    assert time.monotonic() - started < 10


def test_a_process_exit_ends_the_wait_at_once():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(AssertionError, match="waiting for never: helper exited with 3\ngone"):
        wait_for(lambda: False, 60, "never", interval=30, alive=proc_alive(proc, "helper", lambda: "gone"),
                 idle=proc_idle(proc))
    assert time.monotonic() - started < 30
