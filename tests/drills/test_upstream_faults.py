"""Drill 1: every simulator fault kind while a REST poller and a /ws client are connected to the web.

One stack (simulator -> worker -> web) serves the whole module; each case adds its faults, holds them until the
fault is visibly at work (and at least MIN_HOLD_S), clears them, then waits for fresh data everywhere. The live
clients check every body and message throughout (tests/drills/clients.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.drills.clients import TTL_S, RestPoller, WsWatcher, now_ms
from tests.drills.helpers import Stack, live_stack

pytestmark = pytest.mark.drill
MIN_HOLD_S = 2.0        # live clients ride every fault for at least this long
EVIDENCE_S = 15.0       # the fault must show its effect within this (generous: the machine is shared)
RECOVERY_S = 10.0       # after clearing: fresh REST, fresh /ws update, worker mode back


@dataclass
class Drill:
    stack: Stack
    watcher: WsWatcher
    poller: RestPoller


@dataclass
class Case:
    id: str
    faults: list[tuple[str, dict[str, Any]]]     # (kind, add_fault kwargs)
    evidence: Callable[[Drill, int, dict], Any]  # (drill, fault start ms, counters before) -> truthy once seen
    shows: str
    modes_after: tuple[str, ...] = ("ws",)
    pulses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # short extra faults after the main


def _errors_since(drill: Drill, started: int, text: str) -> bool:
    return any(e["at"] >= started and text in e["message"] for e in drill.stack.status()["errors"])


def _egress_sum(status: dict, *path: str) -> int:
    total = 0
    for egress in status["egresses"]:
        value: Any = egress
        for key in path:
            value = value[key]
        total += value
    return total


def _served_fresh_since(drill: Drill, started: int) -> bool:
    """Data keeps flowing through the fault: REST bodies received 1.5 s into it are fully fresh."""
    bodies = [drill.poller.body(i) for i in drill.stack.accounts]
    return all(b is not None and b["_received"] > started + 1500 and not b["stale"] for b in bodies)


def _stale_section_kept(drill: Drill, started: int, name: str) -> bool:
    """Some account serves `name` flagged stale with its age past the TTL and its last good data kept."""
    for index in drill.stack.accounts:
        body = drill.poller.body(index)
        if body and body["_received"] > started:
            section = body["sections"][name]
            if section["stale"] and section["data"] is not None and section["age_ms"] is not None:
                return True
    return False


def _all_stale_kept(drill: Drill, started: int) -> bool:
    """Total outage: every account is stale with an age past the TTL, still serving its data, and /ws
    clients were told so by a status push."""
    for index in drill.stack.accounts:
        body = drill.poller.body(index)
        # A poller's copy is refreshed only on 200 (a 304 says "still this, still stale"): age it from as_of.
        if not (body and body["_received"] > started and body["stale"] and now_ms() - body["as_of"] > TTL_S * 1000
                and body["sections"]["positions"]["data"] is not None):
            return False
    return drill.watcher.status_after(started, lambda s: all(a["stale"] for a in s["accounts"].values()))


def _diagnosis(drill: Drill, started: int) -> str:
    status = drill.stack.status()
    bodies = {i: drill.poller.body(i) for i in drill.stack.accounts}
    lines = [f"mode={status['mode']} egress ws={[e['ws'] for e in status['egresses']]}",
             f"faults={drill.stack.sim.control.faults()}"]
    for index, body in bodies.items():
        if body:
            lines.append(f"account {index}: received {body['_received'] - started} ms after start, seq {body['seq']}, "
                         f"stale {body['stale']}, age {body['age_ms']}, sections " + ", ".join(
                             f"{n}:{s['stale']}/{s['age_ms']}/{s['source']}" for n, s in body['sections'].items()))
    statuses = [m["status"] for m in drill.watcher.since(started, ("status",))]
    last = {k: (a["stale"], a["age_ms"]) for k, a in statuses[-1]["accounts"].items()} if statuses else None
    lines.append(f"/ws status pushes since start: {len(statuses)}; last accounts: {last}")
    lines += [f"error {e}" for e in status["errors"][-5:]]
    return "\n".join(lines)


CASES = [
    Case("http_5xx", [("http_5xx", {"status": 503})],
         lambda d, t, c: _errors_since(d, t, "HTTP 503"), "HTTP 503 in the worker's status errors"),
    Case("latency", [("latency", {"ms": 800})],
         lambda d, t, c: _served_fresh_since(d, t), "data still fresh under 800 ms of latency"),
    Case("hang", [("hang", {})],
         lambda d, t, c: _errors_since(d, t, "Timeout"), "a REST timeout in the worker's status errors"),
    Case("malformed_json", [("malformed_json", {})],
         lambda d, t, c: _errors_since(d, t, "malformed JSON"), "'malformed JSON' in the worker's status errors"),
    Case("schema_drift-strict", [("schema_drift", {"lenient": False})],
         lambda d, t, c: _served_fresh_since(d, t), "data still fresh with unknown fields upstream"),
    Case("schema_drift-lenient", [("schema_drift", {"lenient": True})],
         lambda d, t, c: _served_fresh_since(d, t), "data still fresh with the live lenient shapes"),
    Case("rate_limit_storm", [("rate_limit_storm", {"retry_after_s": 1})],
         lambda d, t, c: _egress_sum(d.stack.status(), "rate_limited") > c["rate_limited"],
         "429s counted by the worker"),
    Case("ws_drop", [("ws_drop", {})],
         lambda d, t, c: _egress_sum(d.stack.status(), "ws", "reconnects") >= c["reconnects"] + 2,
         "the worker reconnecting its upstream socket"),
    Case("ws_silence", [("ws_silence", {})],
         lambda d, t, c: _errors_since(d, t, "watchdog") and _stale_section_kept(d, t, "stats"),
         "the watchdog firing and the WS-only stats section served stale with its last data"),
    Case("ws_shutdown", [("ws_shutdown", {"close_in_ms": 300})],
         lambda d, t, c: _errors_since(d, t, "shutdown"), "the upstream shutdown frame handled"),
    # An open socket survives refuse_upgrade; a short ws_drop makes the worker reconnect into the refusal.
    Case("refuse_upgrade", [("refuse_upgrade", {})],
         lambda d, t, c: d.stack.status()["mode"] == "ws-readonly", "the worker falling back to ?readonly=true",
         modes_after=("ws", "ws-readonly"), pulses=[("ws_drop", {"duration_s": 0.3})]),
    Case("refuse_upgrade-readonly", [("refuse_upgrade", {"readonly": True})],
         lambda d, t, c: d.stack.status()["mode"] == "rest-only", "the worker falling back to REST only",
         pulses=[("ws_drop", {"duration_s": 0.3})]),
    Case("total_outage", [("http_5xx", {"status": 502}), ("refuse_upgrade", {"readonly": True})],
         lambda d, t, c: _all_stale_kept(d, t), "every account stale but still served, and /ws told",
         pulses=[("ws_drop", {"duration_s": 0.3})]),
]


@pytest.fixture(scope="module")
def drill(tmp_path_factory: pytest.TempPathFactory):
    log_dir = tmp_path_factory.mktemp("fault-drill")
    with live_stack(log_dir, {"CACHE_DIR": str(log_dir / "store")}, accounts=2) as stack:
        stack.wait_until(stack.fresh_everywhere, 20, "fresh data before the first fault")
        watcher = WsWatcher(stack.web.ws_url, name="ws")
        poller = RestPoller(stack.web.url, stack.accounts)
        try:
            yield Drill(stack, watcher, poller)
        finally:
            watcher.close()
            poller.close()
            stack.sim.control.clear_faults()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fault_during_live_traffic(drill: Drill, case: Case) -> None:
    stack, watcher, poller = drill.stack, drill.watcher, drill.poller
    control = stack.sim.control
    stack.wait_until(stack.fresh_everywhere, RECOVERY_S, "fresh data before the fault")
    before = stack.status()
    counters = {"rate_limited": _egress_sum(before, "rate_limited"),
                "reconnects": _egress_sum(before, "ws", "reconnects")}
    started = now_ms()
    try:
        for kind, kwargs in case.faults:
            control.add_fault(kind, **kwargs)
        for kind, kwargs in case.pulses:
            control.add_fault(kind, **kwargs)
        try:
            stack.wait_until(lambda: case.evidence(drill, started, counters), EVIDENCE_S, case.shows, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_diagnosis(drill, started)}") from None
        held = (now_ms() - started) / 1000
        if held < MIN_HOLD_S:
            stack.run_for(MIN_HOLD_S - held)
    finally:
        control.clear_faults()
    cleared = now_ms()

    # After clearing: fresh over REST, a fresh update on /ws for every account, the worker's mode back.
    stack.wait_until(stack.fresh_everywhere, RECOVERY_S, "fully fresh REST bodies after clearing")
    watcher.wait_for(lambda w: w.fresh_update_after(cleared, stack.accounts), RECOVERY_S,
                     "a fresh /ws update per account after clearing")
    stack.wait_until(lambda: stack.status()["mode"] in case.modes_after, RECOVERY_S,
                     f"worker mode in {case.modes_after}")
    status = stack.status()
    assert status["worker"]["up"] is True and status["store"]["reachable"] is True

    # No crash, no silent loss, last good data served (checked on every message and body so far).
    stack.assert_alive()
    assert watcher.closed is None, watcher.closed
    assert watcher.violations == [], watcher.violations[:10]
    assert watcher.resyncs == 0  # nothing here resets the store: the feed must never need one
    assert watcher.missing_seqs() == []
    assert poller.violations == [], poller.violations[:10]
    assert poller.requests > 0 and not poller.errors, poller.errors[:5]
