"""Reading values from the environment: the error every bad setting raises, and the typed value parsers.

Shared by core.settings and core.tuning (which must not import each other). Nothing here reads os.environ: each
parser takes the mapping it is given.
"""
from __future__ import annotations

from collections.abc import Mapping


class SettingsError(ValueError):
    """Bad configuration. The message names the variable and never contains a secret value."""


class Secret(str):
    """A string that never shows its value in repr/str formatting of containers or logs."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


def number(env: Mapping[str, str], name: str, default: float, minimum: float, integer: bool = False) -> float:
    """A number from `env[name]` (default when unset or blank), at least `minimum`, never NaN."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {'an integer' if integer else 'a number'} (got {raw!r})") from None
    if value < minimum or value != value or value == float("inf"):
        raise SettingsError(f"{name} must be a finite number, at least {minimum} (got {raw!r})")
    return value


def optional_int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    return int(number(env, name, 0, minimum, integer=True)) if env.get(name, "").strip() else None


def int_value(name: str, raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer (got {raw!r})") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high} (got {value})")
    return value


def flag(name: str, raw: str) -> bool:
    if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
        raise SettingsError(f"{name} must be 0 or 1 (got {raw!r})")
    return raw.lower() in ("1", "true", "yes")
