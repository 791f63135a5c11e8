"""The evaluator, pure: bursts grouped, hysteresis, one message per cooldown for a flapping condition, stable ids."""
from __future__ import annotations

from typing import Any

from core.alerts.evaluate import Evaluator, liquidation_distances, margin_usage
from core.alerts.rules import parse
from core.snapshot import Snapshot
from tests.history.snapshots import ACCOUNT, position, snap, trade

DEST = """
[destinations.ops]
webhook = "https://hooks.example/x"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""
T0 = 1_000_000


def evaluator(rules: str, group_ms: int = 1000) -> Evaluator:
    return Evaluator(parse(DEST + rules, "ALERTS"), group_ms)


def margin_snap(usage_pct: float, equity: str = "1000.000000") -> Snapshot:
    """A position whose margin (notional x IMF) is `usage_pct` of the equity: notional 1000 at IMF = usage."""
    row: dict[str, Any] = {**position(0, "10", entry="100.0"), "position_value": "1000.000000",
                           "initial_margin_fraction": f"{usage_pct:.2f}", "liquidation_price": "0"}
    return snap(positions=[row], equity=equity)


def test_ten_fills_in_a_second_are_one_message() -> None:
    ev = evaluator('[[rules]]\nname = "fills"\nwhen = "fill"\n')
    trades: list[dict[str, Any]] = []
    ev.seed([snap(trades=[])])
    out = []
    for i in range(10):
        trades = trades + [trade(100 + i, T0 + i)]
        out += ev.offer([snap(trades=list(trades))], T0 + i * 90)
    assert out == []  # the group is still open
    assert ev.next_due() == T0 + 1000
    [alert] = ev.tick(T0 + 1000)
    assert alert.values["count"] == 10 and [e["trade_id"] for e in alert.values["events"]] == list(range(100, 110))
    assert alert.account == ACCOUNT and alert.to == ("ops",)
    assert ev.tick(T0 + 5000) == []
    # The same burst evaluated again (a restart replaying it) gets the same id: the outbox deduplicates.
    again = evaluator('[[rules]]\nname = "fills"\nwhen = "fill"\n')
    again.seed([snap(trades=[])])
    again.offer([snap(trades=trades)], T0)
    assert again.tick(T0 + 1000)[0].id == alert.id


def test_the_first_snapshot_is_a_baseline_not_news() -> None:
    ev = evaluator('[[rules]]\nname = "fills"\nwhen = "fill"\n', group_ms=0)
    assert ev.offer([snap(trades=[trade(1, T0)])], T0) == []
    assert [a.values["count"] for a in ev.offer([snap(trades=[trade(1, T0), trade(2, T0)])], T0)] == [1]


def test_position_changes_filtered_by_kind() -> None:
    ev = evaluator('[[rules]]\nname = "pos"\nwhen = "position"\nchanges = ["opened", "flipped"]\n', group_ms=0)
    ev.seed([snap(positions=[])])
    [opened] = ev.offer([snap(positions=[position(0, "1")])], T0)
    assert opened.values["events"][0]["change"] == "opened"
    assert ev.offer([snap(positions=[position(0, "2")])], T0 + 1) == []          # increase: not asked for
    [flipped] = ev.offer([snap(positions=[position(0, "1", sign=-1)])], T0 + 2)
    assert flipped.values["events"][0]["change"] == "flipped"
    assert ev.offer([snap(positions=[])], T0 + 3) == []                           # closed: not asked for


def test_a_flapping_margin_condition_sends_one_message_per_cooldown() -> None:
    ev = evaluator('[[rules]]\nname = "m"\nwhen = "margin_usage_above"\npercent = 80\nclear_below = 70\n'
                   'cooldown_s = 60\n')
    fired = []
    # Flaps every 100 ms across both levels for 59 s: one message.
    for i in range(590):
        fired += ev.offer([margin_snap(85 if i % 2 == 0 else 65)], T0 + i * 100)
    assert len(fired) == 1 and fired[0].values["margin_usage_pct"] == 85
    # Hysteresis: dipping under 80 but not under 70 does not clear, so no new crossing after the cooldown.
    ev.offer([margin_snap(85)], T0 + 59_100)
    ev.offer([margin_snap(75)], T0 + 60_000)
    assert ev.offer([margin_snap(85)], T0 + 61_000) == []
    # Cleared, then crossing again past the cooldown: the second message, counting what was held back.
    ev.offer([margin_snap(65)], T0 + 62_000)
    [second] = ev.offer([margin_snap(90)], T0 + 63_000)
    # 295 crossings in the flapping (1 sent, 294 held) plus the one at 59.1 s.
    assert second.values["suppressed_since_last"] == 295 and second.id != fired[0].id


def test_liquidation_distance_per_market() -> None:
    ev = evaluator('[[rules]]\nname = "liq"\nwhen = "liquidation_distance_below"\npercent = 5\nmarkets = [1]\n')
    near = {**position(1, "10"), "position_value": "1000.000000", "liquidation_price": "97.0"}  # mark 100: 3%
    far = {**position(0, "10"), "position_value": "1000.000000", "liquidation_price": "50.0"}
    also_near = {**position(2, "10"), "position_value": "1000.000000", "liquidation_price": "99.0"}
    current = snap(positions=[near, far, also_near])
    assert liquidation_distances(current) == {0: 50.0, 1: 3.0, 2: 1.0}
    [alert] = ev.offer([current], T0)
    assert alert.market == 1 and alert.values["liquidation_distance_pct"] == 3.0


def test_drawdown_within_the_window() -> None:
    ev = evaluator('[[rules]]\nname = "dd"\nwhen = "drawdown_above"\npercent = 10\nwindow_s = 60\n')
    assert ev.offer([snap(equity="1000")], T0) == []
    assert ev.offer([snap(equity="950")], T0 + 10_000) == []
    [alert] = ev.offer([snap(equity="880")], T0 + 20_000)
    assert alert.values["drawdown_pct"] == 12.0 and alert.values["peak_equity"] == "1000"
    # A slow decline over longer than the window is not a drawdown "within" it.
    slow = evaluator('[[rules]]\nname = "dd"\nwhen = "drawdown_above"\npercent = 10\nwindow_s = 60\n')
    fired = []
    for minute in range(10):
        fired += slow.offer([snap(equity=str(1000 - minute * 20))], T0 + minute * 61_000)
    assert fired == []


def test_stale_fires_on_the_tick() -> None:
    ev = evaluator('[[rules]]\nname = "stale"\nwhen = "stale"\nseconds = 30\n')
    current = snap()
    current["as_of"] = T0
    assert ev.offer([current], T0 + 1000) == []
    assert ev.tick(T0 + 29_000) == []
    [alert] = ev.tick(T0 + 31_000)
    assert alert.values["age_s"] == 31.0
    assert ev.tick(T0 + 40_000) == []  # still firing: not again


def test_margin_usage_follows_portfolio() -> None:
    assert margin_usage(margin_snap(25)) == 25.0
    assert margin_usage(snap(positions=None)) is None


def test_service_condition() -> None:
    ev = evaluator('[[rules]]\nname = "b"\nwhen = "upstream_blocked"\ncooldown_s = 10\n')
    [alert] = ev.service("upstream_blocked", True, T0, {"rate_limited": 3})
    assert alert.account == -1
    assert ev.service("upstream_blocked", True, T0 + 1, {}) == []
    ev.service("upstream_blocked", False, T0 + 2, {})
    assert ev.service("upstream_blocked", True, T0 + 3, {}) == []   # cooldown
    ev.service("upstream_blocked", False, T0 + 4, {})
    assert len(ev.service("upstream_blocked", True, T0 + 10_005, {})) == 1


def test_a_big_burst_lists_at_most_group_sample_fills_and_counts_all() -> None:
    from core.alerts.evaluate import GROUP_SAMPLE

    ev = evaluator('[[rules]]\nname = "fills"\nwhen = "fill"\n')
    ev.seed([snap(trades=[])])
    ev.offer([snap(trades=[trade(i, T0 + i) for i in range(GROUP_SAMPLE * 3)])], T0)
    [alert] = ev.tick(T0 + 1000)
    assert alert.values["count"] == GROUP_SAMPLE * 3 and len(alert.values["events"]) == GROUP_SAMPLE


WORKER_DOWN = '[[rules]]\nname = "down"\nwhen = "worker_down"\nseconds = 30\ncooldown_s = 60\n'


def test_worker_down_fires_once_per_episode_with_an_id_from_the_episode() -> None:
    ev = evaluator(WORKER_DOWN)
    assert ev.worker_down(None, T0, episode=41, values={}) == []
    assert ev.worker_down(29.9, T0, episode=41, values={}) == []  # silent, not yet for `seconds`
    [alert] = ev.worker_down(30.5, T0 + 1000, episode=41, values={"pid": 7})
    assert (alert.when, alert.account, alert.values) == ("worker_down", -1,
                                                        {"pid": 7, "silent_s": 30.5, "threshold": 30.0})
    assert ev.worker_down(90.0, T0 + 60_000, episode=41, values={}) == []  # still the same episode
    # Another process (or this one restarted) sees the episode later: the same id, which the outbox keeps once.
    other = evaluator(WORKER_DOWN)
    [again] = other.worker_down(75.0, T0 + 45_000, episode=41, values={})
    assert again.id == alert.id
    # The heartbeat back clears it; the next episode (the worker moved the store's head) has another id.
    assert ev.worker_down(None, T0 + 100_000, episode=41, values={}) == []
    [second] = ev.worker_down(31.0, T0 + 200_000, episode=57, values={})
    assert second.id != alert.id


def test_worker_down_cooldown_survives_a_restart_through_restore() -> None:
    restarted = evaluator(WORKER_DOWN)
    restarted.restore("down", -1, None, last_fired=T0)  # what the outbox says fired last
    assert restarted.worker_down(31.0, T0 + 30_000, episode=2, values={}) == []  # within cooldown_s
    assert restarted.worker_down(None, T0 + 40_000, episode=2, values={}) == []
    [alert] = restarted.worker_down(31.0, T0 + 90_000, episode=3, values={})
    assert alert.values["suppressed_since_last"] == 1
