"""The upstream-economy part: whole-hyperperiod windows placed in the schedule's gaps, and its quick run."""
import json
import shutil

import pytest

from bench import upstream
from bench.__main__ import main


def _schedule(period: float, phases: list[float], until: float, jitter: float = 0.03) -> list:
    """Arrivals of periodic streams (one per phase), each known to within `jitter` s, like the sampler's."""
    out = []
    for phase in phases:
        t = phase
        while t < until:
            out.append((t - jitter, t + jitter, "account"))
            t += period
    return sorted(out)


def test_hyperperiod_is_the_least_common_multiple_to_a_millisecond():
    assert upstream.hyperperiod([6.25, 25.0]) == 25.0
    assert upstream.hyperperiod([1.5, 2.0]) == 6.0
    assert upstream.hyperperiod([6.667, 26.667]) == 26.667  # both stretched by one factor, rounded apart
    assert upstream.choose_tier(25) == "premium" and upstream.choose_tier(5) == "unlimited"


def test_whole_period_windows_in_the_gaps_count_the_same_whatever_the_phase():
    arrivals = _schedule(6.25, [0.0, 1.04, 2.08], 200)
    counts = set()
    for start in (3.0, 10.1, 37.7, 51.3, 88.8):  # phases that begin anywhere in the cycle
        a, margin = upstream.place(arrivals, start, start + 2 * 25 + 6.25, 2, 25.0)
        assert margin > 1.0  # the edges sit in the 4 s gap, far from any request
        counts |= {sum(upstream.count(arrivals, a + j * 25, a + (j + 1) * 25).values()) for j in range(2)}
    assert counts == {12}
    # A fixed 30 s window, by contrast, catches 14 or 15 depending on where it starts.
    assert {sum(upstream.count(arrivals, s, s + 30).values()) for s in (3.0, 5.0)} == {14, 15}


def test_a_phase_too_short_for_its_windows_is_an_error():
    with pytest.raises(ValueError):
        upstream.place([], 0.0, 40.0, 2, 25.0)


@pytest.mark.slow  # a real upstream run (~26 s alone)
@pytest.mark.timeout(120)
def test_upstream_quick_writes_equal_rates_and_no_429(tmp_path):
    results, docs = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    store = "redis" if shutil.which("redis-server") else "file"
    assert main(["upstream", "--quick", "--store", store, "--results", str(results), "--docs", str(docs)]) == 0
    u = json.loads(results.read_text())["upstream"]
    assert u["rate_limited_total_since_start"] == 0
    assert u["loaded"]["clients"] == u["config"]["clients"] == u["loaded"]["open_at_end"]
    for case in (u["idle"], u["loaded"]):
        assert len(case["per_window"]) == 2 and case["seconds"] == 2 * u["schedule"]["window_s"]
        # Within one request per window of the worker's own plan (the quick schedule's gaps are only ~0.1 s).
        assert all(abs(n - u["schedule"]["plan_per_window_total"]) <= 1 for n in case["per_window"])
    assert abs(u["difference_requests"]) <= 2
    assert "## Upstream economy" in docs.read_text()
