"""What the hostile-client drills (tests/drills/test_hostile_clients*.py) share: a /health latency probe and the
metric that counts clients cut off as slow."""
from __future__ import annotations

import time

import requests

from tests.drills.clients import Poller

SLOW_DROPS = 'lb_ws_clients_dropped_total{reason="slow",route="/ws"}'


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
