"""Three accounts on Lighter's standard tier (60 requests per window per IP): zero 429s, stretched intervals shown.

Lighter's window is a minute; worker and simulator both take a shorter one (WORKER_BUDGET_WINDOW_S and
`--rate-window-s`), so a few windows pass in seconds. The allowance per window stays the tier's 60 requests, and the
configured intervals are short enough that the plan must stretch them, as it does for three accounts on the real tier.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.simulator import run_simulator
from tests.fixtures.worker import run_worker, worker_env_for

pytestmark = pytest.mark.slow  # live budget windows: 20 s and 2 min
EGRESS = "127.0.0.1"
# The headroom (6 of 60 requests) absorbs the lag between the worker counting a request and the simulator
# receiving it; at 54 requests per WINDOW_S that is WINDOW_S / 9 seconds of lag, so the window stays a few seconds.
WINDOW_S = 6.0
WINDOWS = 2               # each run lasts this many windows: the second one only has the slots the first frees
PER_WINDOW = 60           # the standard tier
USABLE = 54               # less the worker's 10% headroom
POLL, ORDERS = 0.25, 1.0  # 3 accounts want 3 * 6/0.25 + 3 * 6/1.0 = 90 requests per window: more than 54
INTERVALS = {"POLL_INTERVAL": str(POLL), "ORDERS_INTERVAL": str(ORDERS), "WORKER_BUDGET_WINDOW_S": str(WINDOW_S)}


def _run(tmp_path: Path, seconds: float, **overrides: str) -> tuple[dict, dict]:
    # The simulator's default tier: standard.
    with run_simulator(tick_ms=100, rate_window_s=WINDOW_S) as sim:
        env = worker_env_for(sim, {"CACHE_DIR": str(tmp_path / "store")}, **INTERVALS, **overrides)
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
    planned = USABLE * share * seconds / WINDOW_S  # REST's planned share of the usable budget
    ceiling = USABLE * seconds / WINDOW_S + 2
    assert 0.7 * planned <= sent <= ceiling, f"{sent} requests in {seconds}s (plan {planned:.0f})"
    (egress,) = status["egresses"]
    used = egress["budget"]["used_last_minute"]
    # A shortened window is named in the record: both counts are per window.
    assert egress["rate_limited"] == 0
    assert egress["budget"] == {"per_minute": PER_WINDOW, "used_last_minute": used, "window_s": WINDOW_S}
    assert used <= USABLE
    intervals = status["intervals"]
    assert intervals["stretched"] and f"requests/{WINDOW_S:g}s" in intervals["reason"]
    assert intervals["poll"]["configured"] == POLL and intervals["orders"]["configured"] == ORDERS
    poll, orders = intervals["poll"]["effective"], intervals["orders"]["effective"]
    assert poll > POLL and orders > ORDERS
    # Stretched by one factor, to exactly REST's share of the usable budget.
    assert poll / POLL == pytest.approx(orders / ORDERS, rel=0.01)
    assert 3 * WINDOW_S / poll + 3 * WINDOW_S / orders == pytest.approx(USABLE * share, rel=0.01)


def test_rest_only_stays_inside_standard_budget(tmp_path: Path) -> None:
    """REST as the whole feed is the heaviest use of the budget: it plans for all of it."""
    seconds = WINDOWS * WINDOW_S
    counters, status = _run(tmp_path, seconds, WORKER_WS="0")
    _check(counters, status, seconds, share=1.0)
    assert status["mode"] == "rest-only"


@pytest.mark.drill
def test_ws_and_rest_on_standard_tier(tmp_path: Path) -> None:
    """The issue's drill (two minutes of Lighter's one-minute window) in windows of WINDOW_S: with a live
    WebSocket, REST only reconciles and plans for half the budget."""
    seconds = WINDOWS * WINDOW_S
    counters, status = _run(tmp_path, seconds)
    _check(counters, status, seconds, share=0.5)
    assert status["mode"] == "ws"
