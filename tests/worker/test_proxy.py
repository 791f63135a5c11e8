"""A real proxy (tinyproxy, Basic auth, bound to 127.0.0.2) carries a group's REST and WS; upstream is lenient."""
from __future__ import annotations

from pathlib import Path

from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for
from tests.worker.conftest import EGRESS_ADDRESS, PROXY_PASSWORD, TinyProxy
from tests.worker.helpers import assert_no_secrets, has_data


def test_proxied_group_goes_through_tinyproxy(tinyproxy: TinyProxy, tmp_path: Path) -> None:
    # --lenient: live-like shapes that fail the SDK's strict validation; the worker must relay them anyway.
    with run_simulator(tick_ms=100, tier="unlimited", lenient=True) as sim:
        accounts = [a["account_index"] for a in sim.control.accounts()]
        # Group 1 (all three accounts) through the proxy, in the `host:port:user:pass` form users paste.
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, UPSTREAM_TIER="unlimited",
                             Lighter_1_PROXY_1_URL=tinyproxy.colon_form, LOG_LEVEL="DEBUG")
        with run_worker(env, log_dir=tmp_path) as worker:
            store = worker.store()
            worker.wait_for(lambda: all(has_data(store, i, ("summary", "positions", "orders", "stats"))
                                        for i in accounts), 15, message="data through the proxy")
            status = worker.wait_for(lambda: (s := store.status()) and s["egresses"][0]["ws"]["state"] == "connected"
                                     and s, 10, message="WS through the proxy")
            counters = sim.control.counters()
            snapshot = store.account(accounts[0])
        assert worker.exit_code == 0
    (egress,) = status["egresses"]
    assert egress["id"] == "group1-proxy1" and egress["proxy"] == f"http://lbuser:***@127.0.0.1:{tinyproxy.port}"
    assert egress["requests"] > 0 and egress["errors"] == 0
    # The simulator keys egress by peer address: everything it saw came from the proxy's bind address.
    assert set(counters["requests"]) == {EGRESS_ADDRESS}
    assert counters["requests"][EGRESS_ADDRESS].get("/api/v1/account", 0) > 0
    assert counters["requests"][EGRESS_ADDRESS].get("/api/v1/accountActiveOrders", 0) > 0
    assert counters["ws"]["connections_total"] >= 1
    proxy_log = tinyproxy.log_path.read_text()
    assert f"CONNECT 127.0.0.1:{sim.base_url.rsplit(':', 1)[1]}" in proxy_log  # the WS tunnel
    log = worker.log_text()
    assert_no_secrets(log, [PROXY_PASSWORD] + [v for k, v in env.items() if k.endswith("_PRIVATE")])
    assert "group1-proxy1" in log
    summary = snapshot["sections"]["summary"]
    assert summary["error"] is None and "pool_info" not in summary["data"]
    assert summary["data"]["can_rfq_market_ids"] is None
