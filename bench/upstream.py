"""Upstream economy: REST requests/s the worker sends the simulator, and 429s, with 0 and with 1,000 /ws clients.

The web never calls upstream, so the two rates must be identical and there must be no 429 at all. The worker
polls on a fixed schedule (intervals stretched to its budget, read from its status record), so a window of
arbitrary length counts whichever polls its edges happen to catch (30 s windows of the same 6.25 s / 25 s
schedule once counted 19 and 16 requests). Here every window spans a whole number of the schedule's hyperperiods
(the least common multiple of its intervals, 25 s on premium), and its edges are placed in the gaps between
requests, so a steady schedule puts exactly the same number of requests in every window. A thread samples the
simulator's `/_sim/counters` every 50 ms, which timestamps each request to within about 0.1 s; the windows are
placed afterwards, inside each phase. Phases are interleaved 0 | N N | 0 clients so drift cancels out.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import requests

from bench.clients import ClientPool
from bench.stack import Stack, running
from core.settings import ENDPOINT_WEIGHT, TIER_WEIGHT_PER_MINUTE, Settings
from core.snapshot import now_ms
from worker.upstream.budget import SHARE_REST_ONLY, SHARE_WS, UpstreamBudget, plan

TIERS = ("premium", "unlimited")  # cheapest first; the tiers both the simulator and the worker know
KINDS = {"/api/v1/account": "account", "/api/v1/accountActiveOrders": "orders"}
Arrival = tuple[float, float, str]  # (after, before, kind): the request reached the simulator in between


@dataclass
class UpstreamConfig:
    window_s: float = 25.0  # per window, rounded to whole hyperperiods (at least one); 0 clients get two
    # windows (before and after), N clients two in a row
    settle_s: float = 5.0  # at least this long after start-up; also until the WS-live plan is steady
    clients: int = 1000
    tier: str | None = None  # None: the cheapest tier whose hyperperiod fits window_s (premium; unlimited
    # for --quick, whose 5 s window is shorter than premium's 25 s hyperperiod)
    store: str = "redis"
    sample_every_s: float = 0.05


def hyperperiod(intervals: list[float], max_multiple: int = 16) -> float:
    """The shortest multiple of the longest interval that every interval divides (to 1 ms)."""
    longest = max(intervals)
    for m in range(1, max_multiple + 1):
        span = m * longest
        if all(abs(span / i - round(span / i)) * i < 0.001 for i in intervals):
            return round(span, 3)
    return round(max_multiple * longest, 3)


def predicted_hyperperiod(tier: str, accounts: int = 3) -> float:
    """The worker's WS-live plan for `accounts` keyed accounts at the default intervals (worker/upstream/budget.py)."""
    weight = TIER_WEIGHT_PER_MINUTE.get(tier)  # None: unlimited, the configured intervals run as they are
    usable = None if weight is None else UpstreamBudget(weight // ENDPOINT_WEIGHT, time.monotonic).usable
    p = plan(Settings.poll_interval, Settings.orders_interval, accounts, accounts, usable, SHARE_WS)
    return hyperperiod([p.poll, p.orders])


def choose_tier(window_s: float) -> str:
    return next((t for t in TIERS if predicted_hyperperiod(t) <= window_s + 1e-6), TIERS[-1])


@dataclass
class Schedule:
    """The worker's effective plan, summed over egresses: kind -> [(interval s, accounts)]."""

    streams: dict[str, list[tuple[float, int]]]
    ws_since_ms: int
    reconnects: int
    startup_longest_s: float  # bound on the longest interval of the plan used before the WS went live

    def intervals(self) -> list[float]:
        return [i for s in self.streams.values() for i, n in s if n]

    def per_s(self) -> dict[str, float]:
        return {kind: sum(n / i for i, n in s) for kind, s in self.streams.items()}


def schedule_of(status: dict[str, Any]) -> Schedule:
    keyed = {int(k) for k, a in (status.get("accounts") or {}).items() if not a.get("public_only")}
    streams: dict[str, list[tuple[float, int]]] = {"account": [], "orders": []}
    for e in status["egresses"]:
        streams["account"].append((e["intervals"]["poll"], len(e["accounts"])))
        streams["orders"].append((e["intervals"]["orders"], len(keyed & set(e["accounts"]))))
    # Before the WS is live the planner may use the whole budget instead of SHARE_WS of it, so its stretch
    # factor is SHARE_WS / SHARE_REST_ONLY of the live one, but it never goes below the configured interval.
    configured = [status["intervals"][k]["configured"] for k in ("poll", "orders")]
    live = [i for e in status["egresses"] for i in (e["intervals"]["poll"], e["intervals"]["orders"])]
    startup = max(max(configured), max(live) * SHARE_WS / SHARE_REST_ONLY)
    return Schedule(streams, max(e["ws"]["since"] for e in status["egresses"]),
                    sum(e["ws"]["reconnects"] for e in status["egresses"]), startup)


def live_schedule(stack: Stack, deadline_s: float = 30) -> Schedule:
    """Wait until every egress's WebSocket is live (REST then runs its WS-live plan) and read that plan."""
    end = time.monotonic() + deadline_s
    while True:
        status = stack.session.get(f"{stack.web_url}/api/status", timeout=5).json()
        egresses = status.get("egresses") or []
        # The history backfill's first pass (start-up only, then every HISTORY_BACKFILL_S) is not the steady plan.
        backfilled = (status.get("history") or {}).get("backfilled_at_ms") or not status.get("history")
        if (status.get("mode") == "ws" and egresses and all(e["ws"]["state"] == "connected" for e in egresses)
                and backfilled):
            return schedule_of(status)
        if time.monotonic() > end:
            raise RuntimeError(f"the worker's WebSocket was not live within {deadline_s}s (mode {status.get('mode')})")
        time.sleep(0.2)


class Sampler:
    """Reads the simulator's counters every `every_s` in a thread; each increment becomes an Arrival."""

    def __init__(self, sim_url: str, every_s: float) -> None:
        self.url, self.every_s = f"{sim_url}/_sim/counters", every_s
        self.session = requests.Session()
        self.arrivals: list[Arrival] = []
        self.limited: list[Arrival] = []
        self.stop = threading.Event()
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> tuple[float, float, dict[str, int], int]:
        before = time.monotonic()
        c = self.session.get(self.url, timeout=5).json()
        counts: dict[str, int] = {}
        for paths in c["requests"].values():
            for path, n in paths.items():
                counts[KINDS.get(path, path)] = counts.get(KINDS.get(path, path), 0) + n
        return before, time.monotonic(), counts, sum(c["rate_limited"].values())

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - re-raised by check() in the bench's thread
            self.failed = exc

    def _loop(self) -> None:
        prev_before, _, prev, prev_limited = self._read()
        while not self.stop.wait(self.every_s):
            try:
                before, after, counts, limited = self._read()
            except requests.RequestException:
                continue  # the next read's interval spans the gap, and the edge margins account for it
            for kind, n in counts.items():
                self.arrivals += [(prev_before, after, kind)] * (n - prev.get(kind, 0))
            self.limited += [(prev_before, after, "429")] * (limited - prev_limited)
            prev_before, prev, prev_limited = before, counts, limited

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def check(self) -> None:
        if self.failed is not None or self.thread.is_alive():
            raise RuntimeError(f"the counter sampler failed: {self.failed!r}")


def _clearance(arrivals: list[Arrival], t: float) -> float:
    """Seconds between instant t and the nearest arrival's uncertainty interval (0 if inside one)."""
    return min((max(lo - t, t - hi, 0.0) for lo, hi, _ in arrivals), default=math.inf)


def place(arrivals: list[Arrival], start: float, end: float, windows: int, length: float,
          step: float = 0.01) -> tuple[float, float]:
    """(a, margin): the a in [start, end - windows·length] whose edges a + k·length lie farthest from any arrival."""
    last = end - windows * length
    if last < start:
        raise ValueError(f"phase of {end - start:.1f}s cannot hold {windows} × {length}s")
    near = [x for x in arrivals if start - 1 <= x[1] and x[0] <= end + 1]
    best, margin = start, -1.0
    for k in range(int((last - start) / step) + 1):
        a = start + k * step
        m = min(_clearance(near, a + j * length) for j in range(windows + 1))
        if m > margin:
            best, margin = a, m
    return best, margin


def count(arrivals: list[Arrival], a: float, b: float) -> dict[str, int]:
    out: dict[str, int] = {}
    for lo, hi, kind in arrivals:
        if a <= (lo + hi) / 2 < b:
            out[kind] = out.get(kind, 0) + 1
    return out


def windows_of(sampler: Sampler, phase: tuple[float, float], n: int, length: float, t0: float) -> list[dict]:
    a, margin = place(sampler.arrivals, phase[0], phase[1], n, length)
    out = []
    for j in range(n):
        lo, hi = a + j * length, a + (j + 1) * length
        by_kind = count(sampler.arrivals, lo, hi)
        out.append({"start_s": round(lo - t0, 2), "seconds": round(length, 3), "requests": sum(by_kind.values()),
                    "by_kind": by_kind, "rate_limited": sum(count(sampler.limited, lo, hi).values()),
                    "edge_margin_s": round(margin, 2)})
    return out


def summarise(windows: list[dict], clients: int) -> dict[str, Any]:
    seconds = sum(w["seconds"] for w in windows)
    requests_ = sum(w["requests"] for w in windows)
    kinds = sorted({k for w in windows for k in w["by_kind"]})
    return {"clients": clients, "requests": requests_, "seconds": round(seconds, 3),
            "requests_per_s": round(requests_ / seconds, 4),
            "by_kind_per_s": {k: round(sum(w["by_kind"].get(k, 0) for w in windows) / seconds, 4) for k in kinds},
            "per_window": [w["requests"] for w in windows], "rate_limited": sum(w["rate_limited"] for w in windows),
            "edge_margin_s": min(w["edge_margin_s"] for w in windows), "windows": windows}


def run(cfg: UpstreamConfig, log: Callable = print) -> dict[str, Any]:
    tier = cfg.tier or choose_tier(cfg.window_s)
    with running(n_accounts=3, tier=tier, store=cfg.store) as stack, \
            Sampler(stack.sim_url, cfg.sample_every_s) as sampler:
        start = time.monotonic()
        sched = live_schedule(stack)
        period = hyperperiod(sched.intervals())
        n = max(1, round(cfg.window_s / period))
        length, slack = n * period, min(min(sched.intervals()), period)
        # Tasks keep the due time the start-up plan gave them until they next run.
        steady_in = (sched.ws_since_ms - now_ms()) / 1000 + sched.startup_longest_s + 0.5
        time.sleep(max(cfg.settle_s - (time.monotonic() - start), steady_in, 0))
        log(f"upstream: tier {tier}, schedule {sched.streams}, windows of {n} × {period} s")

        def phase(windows: int) -> tuple[float, float]:
            begin = time.monotonic()
            time.sleep(windows * length + slack)
            return begin, time.monotonic()

        idle_before = phase(1)
        with ClientPool(stack.ws_url, cfg.clients, 2, wait_sync=True) as pool:
            ready = pool.wait_ready()
            loaded_phase = phase(2)
            open_clients = pool.open_count()
        idle_after = phase(1)
        time.sleep(0.2)  # one more counter sample past the last window
        end_sched = schedule_of(stack.session.get(f"{stack.web_url}/api/status", timeout=5).json())
        total_429 = stack.upstream_counts()[1]
    sampler.check()
    t0 = idle_before[0]
    idle = summarise(windows_of(sampler, idle_before, 1, length, t0)
                     + windows_of(sampler, idle_after, 1, length, t0), 0)
    loaded = summarise(windows_of(sampler, loaded_phase, 2, length, t0), ready["connected"])
    return result(cfg, tier, sched, end_sched, period, n, idle, {**loaded, "open_at_end": open_clients}, total_429,
                  log)


def result(cfg: UpstreamConfig, tier: str, sched: Schedule, end_sched: Schedule, period: float, n: int,
           idle: dict, loaded: dict, total_429: int, log: Callable) -> dict[str, Any]:
    plan_per_s = sched.per_s()
    per_window = {k: round(v * n * period, 3) for k, v in plan_per_s.items()}
    diff = loaded["requests"] - idle["requests"]  # equal total seconds in both cases
    quantum = round(1 / idle["seconds"], 4)
    for name, case in (("0 clients", idle), (f"{loaded['clients']} clients", loaded)):
        log(f"upstream: {name}: {case['requests_per_s']} req/s {case['by_kind_per_s']}, windows "
            f"{case['per_window']}, 429s {case['rate_limited']}, edge margin {case['edge_margin_s']} s")
    return {"config": {**asdict(cfg), "tier": tier},
            "schedule": {"streams": {k: [list(s) for s in v] for k, v in sched.streams.items()},
                         "hyperperiod_s": period, "window_s": round(n * period, 3),
                         "plan_per_window": per_window, "plan_per_window_total": round(sum(per_window.values()), 3),
                         "plan_requests_per_s": round(sum(plan_per_s.values()), 4),
                         "plan_by_kind_per_s": {k: round(v, 4) for k, v in plan_per_s.items()},
                         "steady_after_ws_live_s": sched.startup_longest_s + 0.5,
                         "unchanged_at_end": end_sched.streams == sched.streams,
                         "ws_reconnects_during_run": end_sched.reconnects - sched.reconnects},
            "idle": idle, "loaded": loaded,
            "difference_requests": diff, "difference_requests_per_s": round(diff / idle["seconds"], 4),
            "quantisation_requests_per_s": quantum,
            "equal_within_quantisation": diff == 0 and min(idle["edge_margin_s"], loaded["edge_margin_s"]) > 0,
            "matches_plan": all(w == round(sum(per_window.values()))
                                for w in idle["per_window"] + loaded["per_window"]),
            "rate_limited_total_since_start": total_429}
