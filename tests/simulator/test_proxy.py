"""A real HTTP proxy (tinyproxy with `Bind 127.0.0.2`) is a distinct egress with its own budget."""
from __future__ import annotations

import requests

from tests.fixtures.tinyproxy import TinyProxy


def test_proxy_egress_has_its_own_budget(simulator, tinyproxy: TinyProxy) -> None:
    url = f"{simulator.base_url}/api/v1/orderBooks"
    direct = requests.Session()
    direct.trust_env = False
    via_proxy = requests.Session()
    via_proxy.trust_env = False
    via_proxy.proxies = {"http": tinyproxy.url}
    assert [direct.get(url, timeout=5).status_code for _ in range(61)][-2:] == [200, 429]
    assert via_proxy.get(url, timeout=5).status_code == 200
    counters = simulator.control.counters()
    assert counters["requests"]["127.0.0.2"] == {"/api/v1/orderBooks": 1}
    assert counters["rate_limited"] == {"127.0.0.1": 1}
