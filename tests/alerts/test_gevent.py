"""Delivery never blocks the gevent hub: with the worker's monkey patching, a heartbeat greenlet keeps ticking while
a webhook and an apprise delivery wait ~1 s each for a slow receiver. The control run (no patching) must show the
stall, so the probe is known to see one."""
from __future__ import annotations

import threading
from typing import Any

from tests.alerts.receiver import receiving
from tests.hub_probe import probe as hub_probe

SLOW_S = 1.0
MAX_GAP_MS = 250  # a 10 ms heartbeat on a busy shared machine; a blocked hub shows the whole wait (≥ 1000 ms)


def probe(mode: str) -> dict[str, Any]:
    """Both deliveries (tests/alerts/slow_delivery.py) in a process of their own, `mode` as tests/hub_probe.py."""
    with receiving() as receiver:
        receiver.answer = lambda: threading.Event().wait(SLOW_S) or 200  # a slow receiver, then 200
        return hub_probe(mode, "tests.alerts.slow_delivery:prepare", receiver.url("/hook"),
                         f"json://127.0.0.1:{receiver.port}/chat")


def test_delivery_does_not_stall_the_hub() -> None:
    result = probe("patched")
    assert result["ok"] == [True, True], result
    assert result["elapsed_ms"] >= 2 * SLOW_S * 1000 * 0.9, result  # both really waited
    assert result["max_gap_ms"] < MAX_GAP_MS, result


def test_the_probe_sees_a_blocked_hub() -> None:
    result = probe("unpatched")
    assert result["max_gap_ms"] >= 0.8 * SLOW_S * 1000, result
