"""What the hostile-client drills (tests/drills/test_hostile_clients*.py) share: a /health latency probe, its p95,
and reading /metrics (with the metric that counts clients cut off as slow)."""
from __future__ import annotations

import re
import time

import requests

from tests.drills.clients import Poller

SLOW_DROPS = 'lb_ws_clients_dropped_total{reason="slow",route="/ws"}'


def metric_value(text: str, name: str) -> float:
    """In a /metrics body: the sample `name` (with its labels), or, for a bare name, the sum over all its label
    sets (every route)."""
    labels = "" if "{" in name else r"(?:\{[^}]*\})?"
    found = re.findall(rf"^{re.escape(name)}{labels} ([0-9.e+-]+)$", text, re.MULTILINE)
    return sum(float(value) for value in found)


def p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


class HealthProbe(Poller):
    """Times GET /health every 100 ms in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        super().__init__(every_s=0.1, name="health-probe")

    def poll(self) -> None:
        started = time.monotonic()
        try:
            ok = self.session.get(self.url + "/health", timeout=5).status_code == 200
        except requests.RequestException as exc:
            ok = False
            self.failures.append(repr(exc))
        self.latencies.append(time.monotonic() - started)
        if not ok:
            self.failures.append("not 200")
