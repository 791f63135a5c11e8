"""A real HTTP proxy (tinyproxy with `Bind 127.0.0.2`) is a distinct egress with its own budget."""
from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.skipif(shutil.which("tinyproxy") is None, reason="tinyproxy not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy_url(tmp_path: Path):
    port = _free_port()
    conf = tmp_path / "tinyproxy.conf"
    conf.write_text(f"Port {port}\nListen 127.0.0.1\nBind 127.0.0.2\nTimeout 30\nMaxClients 20\n"
                    "Allow 127.0.0.1\nDisableViaHeader Yes\nLogLevel Error\n")
    proc = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end, pause = time.monotonic() + 5, threading.Event()
        while True:  # wait for the listener, with a deadline
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    pytest.fail("tinyproxy did not start")
                pause.wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_proxy_egress_has_its_own_budget(simulator, proxy_url: str) -> None:
    url = f"{simulator.base_url}/api/v1/orderBooks"
    direct = requests.Session()
    direct.trust_env = False
    via_proxy = requests.Session()
    via_proxy.trust_env = False
    via_proxy.proxies = {"http": proxy_url}
    assert [direct.get(url, timeout=5).status_code for _ in range(61)][-2:] == [200, 429]
    assert via_proxy.get(url, timeout=5).status_code == 200
    counters = simulator.control.counters()
    assert counters["requests"]["127.0.0.2"] == {"/api/v1/orderBooks": 1}
    assert counters["rate_limited"] == {"127.0.0.1": 1}
