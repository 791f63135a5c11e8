"""Every simulator fault kind: the worker survives, keeps and flags its data, and recovers by itself."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fixtures.simulator import RunningSimulator, run_simulator
from tests.fixtures.worker import RunningWorker, run_worker, worker_env_for
from tests.worker.helpers import assert_no_secrets

SECTIONS = ("summary", "positions", "orders", "stats")
FAST = {"UPSTREAM_TIER": "unlimited", "POLL_INTERVAL": "0.3", "ORDERS_INTERVAL": "0.5",
        "WORKER_HTTP_TIMEOUT_S": "1", "WORKER_WS_SILENCE_S": "2", "WORKER_WS_PING_S": "0.5",
        "WORKER_BACKOFF_MAX_S": "0.5", "WORKER_WS_RETRY_S": "2"}


class Fleet:
    """One simulator and one worker shared by the fault tests (each test starts from a healthy state)."""

    def __init__(self, sim: RunningSimulator, worker: RunningWorker) -> None:
        self.sim, self.worker, self.store = sim, worker, worker.store()
        self.accounts = [a["account_index"] for a in sim.control.accounts()]

    def snapshots(self) -> list[dict[str, Any]]:
        return [self.store.account(i) for i in self.accounts]

    def status(self) -> dict[str, Any]:
        return self.store.status() or {}

    def egress(self) -> dict[str, Any]:
        return self.status()["egresses"][0]

    def healthy(self) -> bool:
        status = self.status()
        if status.get("mode") != "ws" or status["egresses"][0]["ws"]["state"] != "connected":
            return False
        return all(s and all(s["sections"][n]["data"] is not None and s["sections"][n]["error"] is None
                             for n in SECTIONS) for s in self.snapshots())

    def flagged(self, sections: tuple[str, ...], text: str) -> bool:
        """Every account has `sections` flagged with `text` while still holding data."""
        return all(all(s["sections"][n]["data"] is not None and text in (s["sections"][n]["error"] or "")
                       for n in sections) for s in self.snapshots())

    def wait(self, predicate: Callable[[], Any], timeout: float = 8.0, message: str = "condition") -> Any:
        return self.worker.wait_for(predicate, timeout, message=message)

    def status_error(self, text: str) -> bool:
        return any(text in e["message"] for e in self.status().get("errors", []))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("faults")
    with run_simulator(tick_ms=100, tier="unlimited") as sim:
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp / "store")}, **FAST)
        with run_worker(env, log_dir=tmp) as worker:
            yield Fleet(sim, worker)
        assert worker.exit_code == 0
    assert_no_secrets(worker.log_text(), [v for k, v in env.items() if k.endswith("_PRIVATE")])


@pytest.fixture
def healthy(fleet: Fleet) -> Iterator[Fleet]:
    fleet.wait(fleet.healthy, 15, message="healthy baseline")
    yield fleet
    fleet.sim.control.clear_faults()
    fleet.wait(fleet.healthy, 15, message="recovery after the fault cleared")


@pytest.mark.slow  # the fault matrix (~25 s); schema drift below stays in the fast tier
@pytest.mark.parametrize("kind, params, flag", [
    ("http_5xx", {"status": 503}, "HTTP 503"),
    ("latency", {"ms": 1500}, "Timeout"),
    ("hang", {}, "Timeout"),
    ("malformed_json", {}, "malformed JSON"),
    ("rate_limit_storm", {"retry_after_s": 1}, "429"),
])
def test_rest_fault_flags_sections_and_keeps_data(healthy: Fleet, kind: str, params: dict, flag: str) -> None:
    healthy.sim.control.add_fault(kind, rest="*", **params)
    healthy.wait(lambda: healthy.flagged(("summary", "positions"), flag), message=f"{kind} flagged")
    healthy.wait(lambda: healthy.flagged(("orders",), flag), message=f"{kind} flagged on orders")
    if kind == "rate_limit_storm":
        assert healthy.egress()["rate_limited"] > 0
        assert healthy.egress()["backoff_until"] or healthy.wait(lambda: healthy.egress()["backoff_until"])
    assert healthy.worker.alive()


def test_rest_schema_drift_is_tolerated(healthy: Fleet) -> None:
    healthy.sim.control.add_fault("schema_drift", rest="*")
    healthy.wait(lambda: all("sim_drift_note" in s["sections"]["summary"]["data"] for s in healthy.snapshots()),
                 message="drifted bodies relayed")
    assert healthy.healthy()  # new fields are not errors


@pytest.mark.slow  # three reconnects (~12 s)
@pytest.mark.parametrize("kind, params, evidence", [
    ("ws_drop", {}, "connection ended"),
    ("ws_shutdown", {"close_in_ms": 300}, "shutdown"),
    ("ws_silence", {}, "watchdog"),
])
def test_ws_fault_reconnects(healthy: Fleet, kind: str, params: dict, evidence: str) -> None:
    before = healthy.egress()["ws"]["reconnects"]
    fault = healthy.sim.control.add_fault(kind, ws="*", **params)
    healthy.wait(lambda: healthy.egress()["ws"]["reconnects"] > before, message=f"{kind} reconnect")
    healthy.sim.control.remove_fault(fault)
    healthy.wait(lambda: healthy.status_error(evidence), message=f"{kind} recorded in status")
    assert all(s["sections"]["positions"]["data"] is not None for s in healthy.snapshots())


@pytest.mark.slow  # walks three modes (~6 s)
def test_refused_upgrade_goes_readonly_then_rest_only_then_back(healthy: Fleet) -> None:
    control = healthy.sim.control
    control.add_fault("refuse_upgrade", ws="*")
    control.remove_fault(control.add_fault("ws_drop", ws="*"))
    healthy.wait(lambda: healthy.status()["mode"] == "ws-readonly", message="readonly mode")
    assert healthy.egress()["ws"]["state"] == "readonly"
    control.add_fault("refuse_upgrade", ws="*", readonly=True)
    control.remove_fault(control.add_fault("ws_drop", ws="*"))
    healthy.wait(lambda: healthy.status()["mode"] == "rest-only", message="rest-only mode")
    assert healthy.egress()["intervals"]["poll"] == 0.3  # unlimited tier: nothing to stretch
    before = healthy.store.account(healthy.accounts[0])["sections"]["summary"]["as_of"]
    healthy.wait(lambda: healthy.store.account(healthy.accounts[0])["sections"]["summary"]["as_of"] > before,
                 message="REST keeps data fresh without a socket")


@pytest.mark.parametrize("kind, params", [("latency", {"ms": 300}), ("schema_drift", {})])
def test_slow_or_drifted_ws_frames_still_apply(healthy: Fleet, kind: str, params: dict) -> None:
    control = healthy.sim.control
    control.add_fault(kind, ws="*", **params)
    control.pause()
    try:
        index = healthy.accounts[0]
        control.trade(index, 0, "0.0100", True)
        truth = control.state(index)["account"]["positions"]

        def arrived() -> bool:
            rows = healthy.store.account(index)["sections"]["positions"]["data"]
            strip = [{k: v for k, v in row.items() if not k.startswith("sim_drift")} for row in rows]
            return strip == truth

        healthy.wait(arrived, message=f"trade through {kind}")
        assert healthy.store.account(index)["sections"]["positions"]["error"] is None
    finally:
        control.resume()
