"""Latency histograms (mergeable across client processes) and median/spread summaries over repeated runs."""
from __future__ import annotations

import statistics
from collections.abc import Iterable

RESOLUTION = 10  # buckets per millisecond: 0.1 ms resolution


def record(hist: dict[int, int], latency_ms: float) -> None:
    bucket = int(latency_ms * RESOLUTION) if latency_ms > 0 else 0
    hist[bucket] = hist.get(bucket, 0) + 1


def merge(hists: Iterable[dict]) -> dict[int, int]:
    """Merge histograms; keys may arrive as strings from JSON."""
    out: dict[int, int] = {}
    for hist in hists:
        for key, count in hist.items():
            out[int(key)] = out.get(int(key), 0) + count
    return out


def percentile(hist: dict[int, int], q: float) -> float | None:
    """The q-th percentile (0-100) in ms, at bucket resolution (upper edge of the bucket)."""
    total = sum(hist.values())
    if not total:
        return None
    rank = max(1, round(q / 100 * total))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return (bucket + 1) / RESOLUTION
    return (max(hist) + 1) / RESOLUTION


def latency_summary(hist: dict[int, int]) -> dict:
    return {"count": sum(hist.values()), "p50_ms": percentile(hist, 50), "p99_ms": percentile(hist, 99),
            "max_ms": percentile(hist, 100)}


def exact_percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def spread(values: list[float | None]) -> dict:
    """Median, min and max of one figure over repeated runs (None values are runs that produced nothing)."""
    got = [v for v in values if v is not None]
    if not got:
        return {"median": None, "min": None, "max": None, "runs": values}
    return {"median": round(statistics.median(got), 3), "min": min(got), "max": max(got), "runs": values}


def ratio(ours: float | None, reference: float | None) -> float | None:
    if ours is None or not reference:
        return None
    return ours / reference
