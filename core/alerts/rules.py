"""Alert rules and destinations from TOML text (docs/alerts.md): pure parsing into frozen objects.

Every problem raises SettingsError naming the rule (or destination) and the problem, never a destination URL.
"""
from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.env import Secret, SettingsError

# What a rule can watch. Event rules fire per change; condition rules fire on a crossing, with hysteresis.
EVENT_KINDS = frozenset({"fill", "position"})
CONDITION_KINDS = frozenset({"liquidation_distance_below", "margin_usage_above", "drawdown_above", "stale"})
SERVICE_KINDS = frozenset({"upstream_blocked", "standby_took_over", "worker_down"})
KINDS = EVENT_KINDS | CONDITION_KINDS | SERVICE_KINDS
POSITION_CHANGES = frozenset({"opened", "closed", "flipped"})
DEFAULT_COOLDOWN_S = 300.0   # a rule's condition re-fires at most this often per account (and market)
DEFAULT_HYSTERESIS_PCT = 10.0  # a condition clears this far (relative) on the safe side of its threshold
MAX_RULES = 200


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str                          # webhook | apprise
    url: Secret = field(repr=False)    # carries tokens: never logged or served
    secret: Secret | None = field(default=None, repr=False)  # Standard Webhooks signing secret (whsec_...)

    def public(self) -> dict[str, Any]:
        """What may be shown: the name, the kind and the URL's scheme only."""
        return {"name": self.name, "kind": self.kind, "scheme": self.url.reveal().split(":", 1)[0]}


@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    to: tuple[str, ...]
    accounts: frozenset[int] | None = None   # None: every account
    markets: frozenset[int] | None = None    # None: every market (liquidation distance)
    threshold: float | None = None           # percent (liquidation, margin, drawdown) or seconds (stale)
    clear: float | None = None               # the condition clears past this (hysteresis)
    window_s: float | None = None            # drawdown window
    changes: frozenset[str] = POSITION_CHANGES
    cooldown_s: float = DEFAULT_COOLDOWN_S

    def watches(self, account: int) -> bool:
        return self.accounts is None or account in self.accounts

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "when": self.when, "to": list(self.to),
                               "cooldown_s": self.cooldown_s}
        if self.accounts is not None:
            out["accounts"] = sorted(self.accounts)
        if self.markets is not None:
            out["markets"] = sorted(self.markets)
        for key in ("threshold", "clear", "window_s"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.when == "position":
            out["changes"] = sorted(self.changes)
        return out


@dataclass(frozen=True)
class AlertRules:
    rules: tuple[Rule, ...] = ()
    destinations: Mapping[str, Destination] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        values = [d.url.reveal() for d in self.destinations.values()]
        values += [d.secret.reveal() for d in self.destinations.values() if d.secret]
        return values


def parse(text: str, source: str) -> AlertRules:
    """`source` names where the text came from (ALERTS or ALERTS_FILE) in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{source}: not valid TOML ({exc})") from None
    unknown = set(doc) - {"destinations", "rules"}
    if unknown:
        raise SettingsError(f"{source}: unknown table(s) {', '.join(sorted(unknown))} (expected destinations, rules)")
    raw_dest = doc.get("destinations", {})
    if not isinstance(raw_dest, dict):
        raise SettingsError(f"{source}: [destinations] must be a table")
    destinations = {name: _destination(source, name, body) for name, body in raw_dest.items()}
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        raise SettingsError(f"{source}: rules must be [[rules]] entries")
    if len(raw_rules) > MAX_RULES:
        raise SettingsError(f"{source}: at most {MAX_RULES} rules")
    rules: list[Rule] = []
    for position, body in enumerate(raw_rules, 1):
        rule = _rule(source, position, body, destinations)
        if any(r.name == rule.name for r in rules):
            raise SettingsError(f"{source}: rule {rule.name!r}: the name is used twice")
        rules.append(rule)
    return AlertRules(tuple(rules), destinations)


def _destination(source: str, name: str, body: Any) -> Destination:
    where = f"{source}: destination {name!r}"
    if not isinstance(body, dict):
        raise SettingsError(f"{where}: must be a table with webhook = \"...\" or apprise = \"...\"")
    unknown = set(body) - {"webhook", "apprise", "secret"}
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    kinds = [k for k in ("webhook", "apprise") if k in body]
    if len(kinds) != 1:
        raise SettingsError(f"{where}: needs exactly one of webhook or apprise")
    kind = kinds[0]
    url = body[kind]
    if not isinstance(url, str) or "://" not in url:
        raise SettingsError(f"{where}: {kind} must be a URL")
    if kind == "webhook":
        if url.split("://", 1)[0].lower() not in ("http", "https"):
            raise SettingsError(f"{where}: webhook must be an http:// or https:// URL")
        secret = body.get("secret")
        if not isinstance(secret, str) or not secret.startswith("whsec_") or len(secret) < 12:
            raise SettingsError(f"{where}: webhook needs secret = \"whsec_...\" (Standard Webhooks, base64)")
        _check_secret(where, secret)
        return Destination(name, kind, Secret(url), Secret(secret))
    if "secret" in body:
        raise SettingsError(f"{where}: secret applies to webhook destinations only")
    return Destination(name, kind, Secret(url))


def _check_secret(where: str, secret: str) -> None:
    import base64
    import binascii
    try:
        base64.b64decode(secret[len("whsec_"):], validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{where}: secret is not base64 after whsec_") from None


def _number(where: str, body: Mapping[str, Any], key: str, low: float, high: float | None = None) -> float | None:
    if key not in body:
        return None
    value = body[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{where}: {key} must be a number")
    if value < low or (high is not None and value > high):
        bound = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise SettingsError(f"{where}: {key} must be {bound}")
    return float(value)


def _ints(where: str, body: Mapping[str, Any], key: str) -> frozenset[int] | None:
    if key not in body:
        return None
    value = body[key]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
        raise SettingsError(f"{where}: {key} must be a non-empty list of integers")
    return frozenset(value)


_THRESHOLD = {"liquidation_distance_below": ("percent", 0.0, 100.0), "margin_usage_above": ("percent", 0.0, 1000.0),
              "drawdown_above": ("percent", 0.0, 100.0), "stale": ("seconds", 0.1, None)}
_COMMON = {"name", "when", "to", "accounts", "cooldown_s"}
_ALLOWED = {"fill": _COMMON, "position": _COMMON | {"changes", "markets"},
            "liquidation_distance_below": _COMMON | {"percent", "clear_above", "markets"},
            "margin_usage_above": _COMMON | {"percent", "clear_below"},
            "drawdown_above": _COMMON | {"percent", "window_s", "clear_below"},
            "stale": _COMMON | {"seconds"},
            "upstream_blocked": _COMMON, "standby_took_over": _COMMON, "worker_down": _COMMON | {"seconds"}}


def _rule(source: str, position: int, body: Any, destinations: Mapping[str, Destination]) -> Rule:
    if not isinstance(body, dict):
        raise SettingsError(f"{source}: rule #{position} must be a table")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise SettingsError(f"{source}: rule #{position} needs a name")
    where = f"{source}: rule {name!r}"
    when = body.get("when")
    if when not in KINDS:
        raise SettingsError(f"{where}: when must be one of {', '.join(sorted(KINDS))}")
    unknown = set(body) - _ALLOWED[when]
    if unknown:
        raise SettingsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for when = {when!r}")
    to = body.get("to", list(destinations))
    if isinstance(to, str):
        to = [to]
    if not isinstance(to, list) or not to or not all(isinstance(t, str) for t in to):
        raise SettingsError(f"{where}: to must name at least one destination")
    missing = [t for t in to if t not in destinations]
    if missing:
        raise SettingsError(f"{where}: unknown destination(s) {', '.join(missing)}")
    cooldown = _number(where, body, "cooldown_s", 0.0)
    threshold = clear = window = None
    if when in _THRESHOLD:
        key, low, high = _THRESHOLD[when]
        threshold = _number(where, body, key, low, high)
        if threshold is None:
            raise SettingsError(f"{where}: needs {key}")
        clear = _clear(where, when, body, threshold)
    if when == "worker_down":
        threshold = _number(where, body, "seconds", 1.0) or 30.0
    if when == "drawdown_above":
        window = _number(where, body, "window_s", 1.0)
        if window is None:
            raise SettingsError(f"{where}: needs window_s")
    changes = POSITION_CHANGES
    if "changes" in body:
        raw = body["changes"]
        if not isinstance(raw, list) or not raw or not set(raw) <= POSITION_CHANGES:
            raise SettingsError(f"{where}: changes must list some of {', '.join(sorted(POSITION_CHANGES))}")
        changes = frozenset(raw)
    return Rule(name=name, when=when, to=tuple(to), accounts=_ints(where, body, "accounts"),
                markets=_ints(where, body, "markets"), threshold=threshold, clear=clear, window_s=window,
                changes=changes, cooldown_s=DEFAULT_COOLDOWN_S if cooldown is None else cooldown)


def _clear(where: str, when: str, body: Mapping[str, Any], threshold: float) -> float:
    """Hysteresis: the level past which a firing condition clears (default: 10% of the threshold, safe side)."""
    if when == "liquidation_distance_below":
        value = _number(where, body, "clear_above", 0.0)
        clear = threshold * (1 + DEFAULT_HYSTERESIS_PCT / 100) if value is None else value
        if clear < threshold:
            raise SettingsError(f"{where}: clear_above must not be below percent")
        return clear
    if when == "stale":
        return threshold
    value = _number(where, body, "clear_below", 0.0)
    clear = threshold * (1 - DEFAULT_HYSTERESIS_PCT / 100) if value is None else value
    if clear > threshold:
        raise SettingsError(f"{where}: clear_below must not be above percent")
    return clear
