"""Rule evaluation, pure: snapshots in, alerts out. No clock, no I/O; the caller passes `now` (ms).

- Event rules (fill, position) collect what happened per (rule, account) for `group_ms` and then emit one alert:
  ten fills in a second are one message.
- Condition rules fire when the condition starts to hold, clear only past the rule's `clear` level (hysteresis),
  and fire again at most once per `cooldown_s`: a flapping condition sends one message per cooldown.
- Each alert carries an id derived from what it reports (rule, account, market, trade ids or the firing time), the
  idempotency key the outbox deduplicates on and receivers see as `webhook-id`.
"""
from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.alerts.rules import AlertRules, Rule
from core.history.events import new_fills, position_events
from core.portfolio import dec, position
from core.snapshot import Snapshot

SERVICE = -1        # the account index of alerts about the service itself (worker, upstream)
GROUP_SAMPLE = 20   # a grouped alert lists at most this many of its events (and counts them all)
_CHANGE = {"open": "opened", "close": "closed", "flip": "flipped"}
_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Alert:
    id: str
    rule: str
    when: str
    account: int
    at: int                          # ms
    values: dict[str, Any]
    to: tuple[str, ...]
    market: int | None = None


@dataclass
class _Condition:
    firing: bool = False
    last_fired: int | None = None
    suppressed: int = 0


@dataclass
class _Group:
    due: int
    events: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0


def alert_id(*parts: object) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:24]
    return f"alert_{digest}"


class Evaluator:
    """State per rule and account (and market). `offer` and `tick` return the alerts due now."""

    def __init__(self, rules: AlertRules, group_ms: int) -> None:
        self.rules = rules.rules
        self.group_ms = group_ms
        self.latest: dict[int, Snapshot] = {}
        self.conditions: dict[tuple[str, int, int | None], _Condition] = {}
        self.groups: dict[tuple[str, int], _Group] = {}
        self.equity: dict[int, deque[tuple[int, Decimal]]] = {}
        self.last_fired: dict[str, int] = {}

    # -- inputs -------------------------------------------------------------------------------------------------
    def seed(self, snapshots: Iterable[Snapshot]) -> None:
        """What the store held at start: the baseline changes are compared with (nothing fires for it)."""
        for snapshot in snapshots:
            self.latest[int(snapshot["account_index"])] = snapshot

    def offer(self, snapshots: Iterable[Snapshot], now: int) -> list[Alert]:
        out: list[Alert] = []
        for current in snapshots:
            account = int(current["account_index"])
            previous = self.latest.get(account)
            self.latest[account] = current
            self._events(account, previous, current, now)
            out += self._conditions(account, current, now)
        return out + self._flush_groups(now)

    def tick(self, now: int) -> list[Alert]:
        """Time-based conditions (staleness) and groups whose window closed."""
        out: list[Alert] = []
        for account, snapshot in self.latest.items():
            out += self._stale(account, snapshot, now)
        return out + self._flush_groups(now)

    def service(self, when: str, holds: bool, now: int, values: dict[str, Any]) -> list[Alert]:
        """A condition about the service itself (upstream_blocked, standby_took_over, worker_down)."""
        out: list[Alert] = []
        for rule in self.rules:
            if rule.when == when:
                out += self._condition(rule, SERVICE, None, holds, not holds, now, values)
        return out

    def worker_down(self, silent_s: float | None, now: int, episode: object,
                    values: dict[str, Any]) -> list[Alert]:
        """`worker_down` rules, evaluated outside the worker (app/alerts_watch.py). `silent_s`: seconds since the
        worker's last heartbeat (None while it beats). Each rule fires once `silent_s` passes its `seconds`. The id
        comes from `episode` (what every watcher reads alike while the worker is gone), not from `now`: several
        web processes, or one restarted during the episode, fire the same id, which the outbox keeps once."""
        out: list[Alert] = []
        for rule in self.rules:
            if rule.when == "worker_down":
                holds = silent_s is not None and silent_s > (rule.threshold or 0)
                out += self._condition(rule, SERVICE, None, holds, silent_s is None, now,
                                       {**values, "silent_s": None if silent_s is None else round(silent_s, 3)},
                                       ident=alert_id(rule.name, SERVICE, "episode", episode))
        return out

    def restore(self, rule: str, account: int, market: int | None, last_fired: int) -> None:
        """A condition's last firing as recorded (the outbox), so a restarted evaluator keeps the cooldown."""
        state = self.conditions.setdefault((rule, account, market), _Condition())
        state.last_fired = max(state.last_fired or 0, last_fired)
        self.last_fired[rule] = max(self.last_fired.get(rule, 0), last_fired)

    def next_due(self) -> int | None:
        """When the earliest open group closes (ms), so the caller can wake for it."""
        return min((g.due for g in self.groups.values()), default=None)

    # -- events -------------------------------------------------------------------------------------------------
    def _events(self, account: int, previous: Snapshot | None, current: Snapshot, now: int) -> None:
        if previous is None:
            return  # no baseline: everything in the first snapshot is history, not news
        fills = positions = None
        for rule in self.rules:
            if not rule.watches(account):
                continue
            if rule.when == "fill":
                fills = new_fills(account, previous, current) if fills is None else fills
                self._group(rule, account, now, [_fill(f) for f in fills])
            elif rule.when == "position":
                positions = position_events(account, previous, current, now) if positions is None else positions
                self._group(rule, account, now, [
                    {"market_id": e["market_id"], "change": _CHANGE[e["kind"]], "size_before": e["size_before"],
                     "size_after": e["size_after"], "avg_entry_price": e["avg_entry_price"]}
                    for e in positions if _CHANGE.get(e["kind"]) in rule.changes
                    and (rule.markets is None or e["market_id"] in rule.markets)])

    def _group(self, rule: Rule, account: int, now: int, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        group = self.groups.setdefault((rule.name, account), _Group(due=now + self.group_ms))
        group.count += len(events)
        group.events += events[: max(0, GROUP_SAMPLE - len(group.events))]

    def _flush_groups(self, now: int) -> list[Alert]:
        out: list[Alert] = []
        rules = {r.name: r for r in self.rules}
        for key in [k for k, g in self.groups.items() if g.due <= now]:
            group = self.groups.pop(key)
            rule, account = rules[key[0]], key[1]
            first, last = group.events[0], group.events[-1]
            ident = alert_id(rule.name, account, first.get("trade_id", first.get("market_id")),
                             last.get("trade_id", last.get("size_after")), group.due - self.group_ms)
            values = {"count": group.count, "events": group.events}
            out.append(self._alert(rule, account, None, now, values, ident))
        return out

    # -- conditions ---------------------------------------------------------------------------------------------
    def _conditions(self, account: int, snapshot: Snapshot, now: int) -> list[Alert]:
        out: list[Alert] = []
        for rule in self.rules:
            if not rule.watches(account) or rule.threshold is None:
                continue
            if rule.when == "margin_usage_above":
                usage = margin_usage(snapshot)
                if usage is not None:
                    out += self._condition(rule, account, None, usage > rule.threshold,
                                           usage < (rule.clear or 0), now, {"margin_usage_pct": _num(usage)})
            elif rule.when == "liquidation_distance_below":
                for market, distance in liquidation_distances(snapshot).items():
                    if rule.markets is None or market in rule.markets:
                        out += self._condition(rule, account, market, distance < rule.threshold,
                                               distance > (rule.clear or 0), now,
                                               {"liquidation_distance_pct": _num(distance), "market_id": market})
            elif rule.when == "drawdown_above":
                drawdown = self._drawdown(account, snapshot, now, rule.window_s or 0)
                if drawdown is not None:
                    out += self._condition(rule, account, None, drawdown[0] > rule.threshold,
                                           drawdown[0] < (rule.clear or 0), now,
                                           {"drawdown_pct": _num(drawdown[0]), "peak_equity": drawdown[1],
                                            "equity": drawdown[2], "window_s": rule.window_s})
        out += self._stale(account, snapshot, now)
        return out

    def _stale(self, account: int, snapshot: Snapshot, now: int) -> list[Alert]:
        out: list[Alert] = []
        as_of = snapshot.get("as_of")
        if not isinstance(as_of, int):
            return out
        age_s = (now - as_of) / 1000
        for rule in self.rules:
            if rule.when == "stale" and rule.watches(account) and rule.threshold is not None:
                out += self._condition(rule, account, None, age_s > rule.threshold, age_s <= rule.threshold, now,
                                       {"age_s": round(age_s, 3)})
        return out

    def _drawdown(self, account: int, snapshot: Snapshot, now: int,
                  window_s: float) -> tuple[float, str, str] | None:
        summary = _data(snapshot, "summary")
        equity = dec(summary.get("total_asset_value")) if isinstance(summary, dict) else None
        if equity is None:
            return None
        samples = self.equity.setdefault(account, deque())
        if not samples or samples[-1][1] != equity or now - samples[-1][0] > 1000:
            samples.append((now, equity))
        # Samples older than the longest drawdown window of any rule are not needed.
        longest = max((r.window_s or 0 for r in self.rules if r.when == "drawdown_above"), default=0)
        while samples and samples[0][0] < now - longest * 1000:
            samples.popleft()
        peak = max((e for t, e in samples if t >= now - window_s * 1000), default=equity)
        if peak <= 0:
            return None
        return float((peak - equity) / peak * _HUNDRED), str(peak), str(equity)

    def _condition(self, rule: Rule, account: int, market: int | None, holds: bool, cleared: bool, now: int,
                   values: dict[str, Any], ident: str | None = None) -> list[Alert]:
        state = self.conditions.setdefault((rule.name, account, market), _Condition())
        if state.firing:
            if cleared:
                state.firing = False
            return []
        if not holds:
            return []
        state.firing = True
        if state.last_fired is not None and now - state.last_fired < rule.cooldown_s * 1000:
            state.suppressed += 1
            return []
        state.last_fired = now
        values = {**values, "threshold": rule.threshold}
        if state.suppressed:
            values["suppressed_since_last"] = state.suppressed
            state.suppressed = 0
        return [self._alert(rule, account, market, now, values, ident or alert_id(rule.name, account, market, now))]

    def _alert(self, rule: Rule, account: int, market: int | None, now: int, values: dict[str, Any],
               ident: str) -> Alert:
        self.last_fired[rule.name] = now
        return Alert(id=ident, rule=rule.name, when=rule.when, account=account, at=now, values=values, to=rule.to,
                     market=market)

    def state(self) -> list[dict[str, Any]]:
        """Conditions that hold now (for the status)."""
        return [{"rule": rule, "account": account, "market": market, "since": s.last_fired}
                for (rule, account, market), s in self.conditions.items() if s.firing]


def margin_usage(snapshot: Snapshot) -> float | None:
    """Margin used over equity, in percent (core/portfolio's definition); None while unknown."""
    summary, rows = _data(snapshot, "summary"), _data(snapshot, "positions")
    equity = dec(summary.get("total_asset_value")) if isinstance(summary, dict) else None
    if equity is None or equity <= 0 or not isinstance(rows, list):
        return None
    used = Decimal(0)
    for row in rows:
        figures = position(row) if isinstance(row, dict) else None
        if figures is not None and figures["margin_used"] is not None:
            used += Decimal(figures["margin_used"])
    return float(used / equity * _HUNDRED)


def liquidation_distances(snapshot: Snapshot) -> dict[int, float]:
    """Per market with a liquidation price: how far the mark is from it, in percent."""
    rows = _data(snapshot, "positions") or []
    out: dict[int, float] = {}
    for row in rows if isinstance(rows, list) else []:
        figures = position(row) if isinstance(row, dict) else None
        if figures is not None and figures["liquidation_distance_pct"] is not None:
            out[int(figures["market_id"])] = float(figures["liquidation_distance_pct"])
    return out


def _data(snapshot: Snapshot, name: str) -> Any:
    section = snapshot.get("sections", {}).get(name)
    return None if section is None else section.get("data")


def _fill(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in ("trade_id", "ts", "market_id", "side", "role", "price", "size", "type")}


def _num(value: float) -> float:
    return round(value, 4)
