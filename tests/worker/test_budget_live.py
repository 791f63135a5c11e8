"""Three accounts on Lighter's standard tier (60 requests/min per IP): zero 429s, stretched intervals shown."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for

pytestmark = pytest.mark.slow  # live budget windows: 20 s and 2 min
EGRESS = "127.0.0.1"


def _run(tmp_path: Path, seconds: float, **overrides: str) -> tuple[dict, dict]:
    with run_simulator(tick_ms=100) as sim:  # the simulator's default tier: standard
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, **overrides)
        with run_worker(env, log_dir=tmp_path) as worker:
            worker.wait_for(lambda: worker.store().status(), 10, message="first status")
            sim.control.reset_counters()
            worker.run_for(seconds)
            counters = sim.control.counters()
            status = worker.store().status()
    return counters, status


def _check(counters: dict, status: dict, seconds: float, share: float) -> None:
    assert counters["rate_limited"] == {}, f"429s from the simulator: {counters['rate_limited']}"
    sent = sum(counters["requests"].get(EGRESS, {}).values())
    planned = 54 * share * seconds / 60  # 60/min less 10% headroom, times REST's planned share
    assert 0.7 * planned <= sent <= 54 * seconds / 60 + 2, f"{sent} requests in {seconds}s (plan {planned:.0f})"
    (egress,) = status["egresses"]
    used = egress["budget"]["used_last_minute"]
    assert egress["rate_limited"] == 0 and egress["budget"] == {"per_minute": 60, "used_last_minute": used}
    assert egress["budget"]["used_last_minute"] <= 54
    intervals = status["intervals"]
    assert intervals["stretched"] and intervals["reason"]
    assert intervals["poll"] == {"configured": 0.5, "effective": intervals["poll"]["effective"]}
    assert intervals["poll"]["effective"] > 0.5 and intervals["orders"]["effective"] > 2.0


def test_rest_only_stays_inside_standard_budget(tmp_path: Path) -> None:
    """REST as the whole feed is the heaviest use of the budget: it plans for all of it."""
    seconds = 20.0
    counters, status = _run(tmp_path, seconds, WORKER_WS="0")
    _check(counters, status, seconds, share=1.0)
    assert status["mode"] == "rest-only"


@pytest.mark.drill
def test_two_minutes_ws_and_rest_on_standard_tier(tmp_path: Path) -> None:
    """The issue's drill, unabridged (two minutes; part of the default run, or alone with `pytest -m drill`)."""
    seconds = 120.0
    counters, status = _run(tmp_path, seconds)
    _check(counters, status, seconds, share=0.5)
    assert status["mode"] == "ws"
