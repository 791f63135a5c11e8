"""Upstream budget window, interval planner, backoff and the reset-after-healthy rule, on an injected clock."""
from __future__ import annotations

import itertools

import pytest

from core.backoff import Retry, backoff
from worker.upstream.budget import SHARE_REST_ONLY, SHARE_WS, UpstreamBudget, plan


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_plan_fits_or_stretches_evenly() -> None:
    assert not plan(0.5, 2.0, 1, 1, None, SHARE_WS).stretched  # unlimited tier
    fits = plan(0.5, 2.0, 1, 1, 21_600, SHARE_WS)  # builder: 720 requests/min usable
    assert (fits.poll, fits.orders, fits.stretched) == (0.5, 2.0, False)
    # Standard tier, three keyed accounts, REST-only: 450 requests/min wanted, 54 usable.
    stretched = plan(0.5, 2.0, 3, 3, 54, SHARE_REST_ONLY)
    assert stretched.stretched and "450" in stretched.reason
    assert stretched.poll / 0.5 == pytest.approx(stretched.orders / 2.0, rel=1e-3)
    assert 3 * 60 / stretched.poll + 3 * 60 / stretched.orders == pytest.approx(54, rel=0.01)
    ws = plan(0.5, 2.0, 3, 3, 54, SHARE_WS)
    assert ws.poll == pytest.approx(2 * stretched.poll, rel=0.01)  # REST only reconciles beside a live WS


def test_budget_rolling_window_and_pause() -> None:
    clock = Clock()
    budget = UpstreamBudget(60, clock, headroom=0.1)
    assert budget.usable == 54
    for _ in range(54):
        assert budget.wait_time() == 0
        budget.spend()
        clock.t += 0.5
    assert budget.used() == 54
    assert budget.wait_time() == pytest.approx(60 - 54 * 0.5)  # until the first request leaves the window
    clock.t += budget.wait_time()
    assert budget.wait_time() == 0 and budget.used() == 53
    budget.pause(7)
    assert budget.wait_time() == pytest.approx(7)
    assert UpstreamBudget(None, clock).wait_time() == 0


def test_shortened_window_plans_and_counts_per_window() -> None:
    """WORKER_BUDGET_WINDOW_S: the tier's allowance applies per window, so demand is counted per window too."""
    minute = plan(0.5, 2.0, 3, 3, 54, SHARE_REST_ONLY)
    short = plan(0.5 / 12, 2.0 / 12, 3, 3, 54, SHARE_REST_ONLY, window_s=5.0)  # 12x the rate in a 12x shorter window
    assert (short.poll * 12, short.orders * 12) == pytest.approx((minute.poll, minute.orders), rel=1e-2)
    assert short.reason == "3 account(s) at configured intervals need 450 requests/5s; this egress may plan 54/5s"
    assert not plan(0.5, 2.0, 3, 3, 54, SHARE_REST_ONLY, window_s=5.0).stretched  # 37.5 per 5 s fits
    clock = Clock()
    budget = UpstreamBudget(60, clock, headroom=0.1, window_s=5.0)
    for _ in range(54):
        budget.spend()
        clock.t += 0.05
    assert budget.used() == 54 and budget.wait_time() == pytest.approx(5 - 54 * 0.05)
    clock.t += 5
    assert budget.used() == 0 and budget.wait_time() == 0


def test_backoff_random_first_then_grows_to_cap() -> None:
    delays = list(itertools.islice(backoff(1.0, 2.0, 5.0, rand=lambda: 0.25), 6))
    assert delays == [0.25, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_resets_only_after_staying_healthy() -> None:
    clock = Clock()
    retry = Retry(clock, initial=1.0, factor=2.0, cap=8.0, healthy_after=60.0)
    first = retry.next_delay()
    assert 0 <= first < 1.0
    assert [retry.next_delay() for _ in range(3)] == [1.0, 2.0, 4.0]
    retry.up()
    clock.t += 10  # up, but not long enough: a flapping server keeps the growth
    assert retry.next_delay() == 8.0
    retry.up()
    clock.t += 61
    assert retry.next_delay() < 1.0 and retry.failures == 1  # healthy for a minute: start over
