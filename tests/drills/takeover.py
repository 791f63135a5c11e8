"""Takeover measurements shared by the hot-standby drills and `python -m bench takeover`.

A takeover is timed from the signal sent to the active worker to the first /ws message a client receives that
was written by the next writer (a higher `epoch`) with data confirmed upstream after the signal (`as_of`): the
moment a client sees fresh data again, not merely the lease changing hands.
"""
from __future__ import annotations

import signal
import statistics
import time
from typing import Any

from tests.drills.clients import WsWatcher, now_ms
from tests.drills.helpers import Stack
from tests.fixtures.worker import RunningWorker, run_worker


def start_standby(stack: Stack) -> RunningWorker:
    """One more worker on the stack's store; returns once /api/status shows it waiting as the standby."""
    worker = stack.exits.enter_context(run_worker(stack.worker_env, log_dir=stack.log_dir))
    stack.wait_until(lambda: ((stack.status().get("standby") or {}).get("pid") == worker.proc.pid
                              and stack.status()["standby"]["up"]), 20, "the new worker shown as standby")
    return worker


def epoch_now(stack: Stack) -> int:
    epoch = stack.status()["worker"]["epoch"]
    assert isinstance(epoch, int), stack.status()["worker"]
    return epoch


def new_writer_seen(watcher: WsWatcher, old_epoch: int, after_ms: int) -> bool:
    """A /ws message from a later writer carrying data confirmed upstream after `after_ms`."""
    return any((m["account"].get("epoch") or 0) > old_epoch and (m["account"].get("as_of") or 0) >= after_ms
               for m in watcher.since(after_ms))


def take_over(stack: Stack, watcher: WsWatcher, active: RunningWorker, how: signal.Signals,
              deadline_s: float) -> tuple[float, RunningWorker]:
    """Signal the active worker and time how long /ws clients wait for fresh data from its standby."""
    old_epoch = epoch_now(stack)
    stack.killed.add("worker")
    sent_ms = now_ms()
    sent = time.monotonic()
    active.proc.send_signal(how)
    watcher.wait_for(lambda w: new_writer_seen(w, old_epoch, sent_ms), deadline_s + 5,
                     f"fresh /ws data from the standby after {how.name}")
    took = time.monotonic() - sent
    active.proc.wait(timeout=10)
    return took, active


def figures(samples: list[float]) -> dict[str, Any]:
    return {"trials": len(samples), "p50_s": round(statistics.median(samples), 3), "max_s": round(max(samples), 3)}


def no_seq_names_two_bodies(watcher: WsWatcher) -> list[str]:
    """Every seq a client saw names one account body (the same account and write), whoever wrote it."""
    seen: dict[int, tuple[int, Any]] = {}
    problems = []
    for _, message in watcher.messages:
        if message.get("type") not in ("update", "snapshot"):
            continue
        body = (message["account_index"], message["account"].get("written_at"))
        first = seen.setdefault(message["seq"], body)
        if first != body:
            problems.append(f"seq {message['seq']} names {first} and {body}")
    return problems
