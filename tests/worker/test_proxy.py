"""A real proxy (tinyproxy, Basic auth, bound to 127.0.0.2) carries a group's REST and WS; upstream is lenient."""
from __future__ import annotations

from pathlib import Path

from tests.fixtures.simulator import run_simulator
from tests.fixtures.tinyproxy import EGRESS_ADDRESS, PROXY_PASSWORD, TinyProxy
from tests.fixtures.worker import run_worker, worker_env_for
from tests.worker.helpers import assert_no_secrets, has_data

DIRECT_ADDRESS = "127.0.0.1"
ALL = ("summary", "positions", "orders", "stats")


def test_proxied_group_goes_through_tinyproxy(tinyproxy: TinyProxy, tmp_path: Path) -> None:
    # --lenient: live-like shapes that fail the SDK's strict validation; the worker must relay them anyway.
    with run_simulator(tick_ms=100, tier="unlimited", lenient=True) as sim:
        sim_accounts = sim.control.accounts()
        accounts = [a["account_index"] for a in sim_accounts]
        # Group 1 (two accounts) through the proxy, in the `host:port:user:pass` form users paste;
        # group 2 (the third account, public-only) has no proxy and goes direct.
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, accounts=2, UPSTREAM_TIER="unlimited",
                             Lighter_1_PROXY_1_URL=tinyproxy.colon_form, LOG_LEVEL="DEBUG",
                             Lighter_2_1_Account_Index=str(accounts[2]))
        with run_worker(env, log_dir=tmp_path) as worker:
            store = worker.store()
            worker.wait_for(lambda: all(has_data(store, i, ALL) for i in accounts[:2])
                            and has_data(store, accounts[2], ("summary", "positions", "stats")), 15,
                            message="data through both egresses")
            worker.wait_for(lambda: (s := store.status()) and all(e["ws"]["state"] == "connected"
                                                                  for e in s["egresses"]), 10, message="both WS up")
            snapshot = store.account(accounts[0])
        assert worker.exit_code == 0
        counters = sim.control.counters()  # after the worker stopped: final, like its last status
    status = store.status()
    egresses = {e["id"]: e for e in status["egresses"]}
    proxied, direct = egresses["group1-proxy1"], egresses["direct"]
    assert proxied["proxy"] == f"http://lbuser:***@127.0.0.1:{tinyproxy.port}" and direct["proxy"] is None
    assert (proxied["accounts"], direct["accounts"]) == (accounts[:2], accounts[2:])
    # The simulator keys egress by peer address: the proxied group's requests all came from the proxy's bind
    # address, the direct group's from loopback (requests killed in flight at stop may differ by a few).
    seen = {address: sum(paths.values()) for address, paths in counters["requests"].items()}
    assert set(seen) == {EGRESS_ADDRESS, DIRECT_ADDRESS}
    assert abs(seen[EGRESS_ADDRESS] - proxied["requests"]) <= 4 and abs(seen[DIRECT_ADDRESS] - direct["requests"]) <= 4
    assert counters["requests"][EGRESS_ADDRESS].get("/api/v1/accountActiveOrders", 0) > 0
    assert "/api/v1/accountActiveOrders" not in counters["requests"][DIRECT_ADDRESS]  # public-only: no orders
    proxy_log = tinyproxy.log_path.read_text()
    assert f"CONNECT 127.0.0.1:{sim.base_url.rsplit(':', 1)[1]}" in proxy_log  # the WS tunnel
    log = worker.log_text()
    assert_no_secrets(log, [PROXY_PASSWORD] + [v for k, v in env.items() if k.endswith("_PRIVATE")])
    summary = snapshot["sections"]["summary"]
    assert summary["error"] is None and "pool_info" not in summary["data"]
    assert summary["data"]["can_rfq_market_ids"] is None
