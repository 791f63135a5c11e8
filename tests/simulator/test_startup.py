"""`python -m simulator` starts fast and stops fast on SIGTERM/SIGINT, even with clients attached."""
from __future__ import annotations

import http.client
import signal
import time
from urllib.parse import urlsplit

import pytest
from websockets.sync.client import connect

from tests.fixtures.simulator import run_simulator


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_up_in_under_two_seconds_and_clean_exit(sig: int) -> None:
    t0 = time.monotonic()
    with run_simulator() as sim:
        assert time.monotonic() - t0 < 2.0
        sim.control.add_fault("hang", rest="*")  # a request parked forever must not delay shutdown
        url = urlsplit(sim.base_url)
        parked = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
        parked.request("GET", "/api/v1/orderBooks")
        with connect(sim.ws_url) as ws:
            ws.recv(timeout=5)
            sim.proc.send_signal(sig)
            t1 = time.monotonic()
            assert sim.proc.wait(timeout=5) == 0
            assert time.monotonic() - t1 < 2.0
        parked.close()


def test_port_zero_announces_the_real_port() -> None:
    with run_simulator() as sim:
        assert not sim.base_url.endswith(":0") and sim.ws_url.endswith("/stream")
        assert sim.control.accounts()
