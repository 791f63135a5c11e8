"""Rate limits per egress (TCP source IP or trusted X-Forwarded-For) with real HTTP clients."""
from __future__ import annotations

import json

from tests.simulator.helpers import http_get


def _burst(base: str, n: int, path: str = "/api/v1/orderBooks", **kw) -> list[int]:
    return [http_get(base, path, **kw)[0] for _ in range(n)]


def test_standard_tier_61st_request_is_429_per_egress(simulator) -> None:
    base = simulator.base_url
    assert _burst(base, 60) == [200] * 60
    status, headers, body = http_get(base, "/api/v1/account?by=index&value=1")
    assert status == 429 and json.loads(body) == {"code": 23000, "message": "Too Many Requests!"}
    assert 1 <= int(headers["Retry-After"]) <= 60
    # Another egress (a client bound to 127.0.0.2) still has its own budget.
    assert http_get(base, "/api/v1/orderBooks", source_ip="127.0.0.2")[0] == 200
    # The root health check and the control API are not charged.
    assert http_get(base, "/")[0] == 200
    counters = simulator.control.counters()
    assert counters["rate_limited"] == {"127.0.0.1": 1}
    assert counters["requests"]["127.0.0.1"]["/api/v1/orderBooks"] == 60
    assert counters["weight_used"] == {"127.0.0.1": 18_000, "127.0.0.2": 300}


def test_premium_weights_and_tier_switch(simulator_factory) -> None:
    sim = simulator_factory(tier="premium")
    assert _burst(sim.base_url, 81) == [200] * 80 + [429]
    sim.control.set_tier("unlimited")
    assert _burst(sim.base_url, 5) == [200] * 5


def test_trusted_forwarded_for_names_the_egress(simulator_factory) -> None:
    sim = simulator_factory(trust_forwarded=True)
    sim.control.set_tier("standard")
    for _i in range(60):
        assert http_get(sim.base_url, "/api/v1/orderBooks", headers={"X-Forwarded-For": "10.0.0.1"})[0] == 200
    assert http_get(sim.base_url, "/api/v1/orderBooks", headers={"X-Forwarded-For": "10.0.0.1"})[0] == 429
    assert http_get(sim.base_url, "/api/v1/orderBooks", headers={"X-Forwarded-For": "1.1.1.1, 10.0.0.2"})[0] == 200
    assert set(sim.control.counters()["requests"]) == {"10.0.0.1", "10.0.0.2"}
