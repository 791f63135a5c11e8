"""Delivery never blocks the gevent hub: with the worker's monkey patching, a heartbeat greenlet keeps ticking while
a webhook and an apprise delivery wait ~1 s each for a slow receiver. The control run (no patching) must show the
stall, so the probe is known to see one."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import orjson

from tests.alerts.receiver import receiving
from tests.paths import ROOT

PROBE = Path(__file__).with_name("gevent_probe.py")
SLOW_S = 1.0
MAX_GAP_MS = 250  # a 10 ms heartbeat on a busy shared machine; a blocked hub shows the whole wait (≥ 1000 ms)


def probe(mode: str) -> dict:
    with receiving() as receiver:
        receiver.answer = lambda: threading.Event().wait(SLOW_S) or 200  # a slow receiver, then 200
        done = subprocess.run([sys.executable, str(PROBE), receiver.url("/hook"),
                               f"json://127.0.0.1:{receiver.port}/chat", mode],
                              cwd=ROOT, capture_output=True, timeout=60,
                              env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: dict = orjson.loads(done.stdout.splitlines()[-1])
    return result


def test_delivery_does_not_stall_the_hub() -> None:
    result = probe("patched")
    assert result["ok"] == [True, True], result
    assert result["elapsed_ms"] >= 2 * SLOW_S * 1000 * 0.9, result  # both really waited
    assert result["max_gap_ms"] < MAX_GAP_MS, result


def test_the_probe_sees_a_blocked_hub() -> None:
    result = probe("unpatched")
    assert result["max_gap_ms"] >= 0.8 * SLOW_S * 1000, result
