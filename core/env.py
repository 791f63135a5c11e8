"""Reading values from the environment: the error every bad setting raises, and the typed value parsers.

Shared by core.settings and core.tuning (which must not import each other). Nothing here reads os.environ: each
parser takes the mapping it is given.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

# Numbers are written the way a shell or a .env file writes them: ASCII digits only. Python's int() and float() also
# accept other scripts' digits ("٥" is 5), underscores and surrounding junk; a setting must not.
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


class SettingsError(ValueError):
    """Bad configuration. The message names the variable and never contains a secret value."""


class Secret(str):
    """A string that never shows its value in repr/str formatting of containers or logs."""

    def __repr__(self) -> str:
        return "Secret('***')"

    def reveal(self) -> str:
        return str.__str__(self)


class RecordingEnv(Mapping[str, str]):
    """A read-only view of the environment that remembers every name asked for, set or not.

    Settings are built through one, so the names it saw are exactly the settings we read: a variable in our
    namespaces that nobody asked for is unknown (core.envnames), with no list of names to keep in step by hand.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._environ[name]

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self._environ

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def parse_number(name: str, raw: str, integer: bool = False) -> float:
    """`raw` as an int or a finite float, written in ASCII digits; SettingsError naming `name` otherwise."""
    kind = "an integer" if integer else "a number"
    if not (_INTEGER if integer else _DECIMAL).fullmatch(raw):
        raise SettingsError(f"{name} must be {kind} (finite, in ASCII digits; got {raw!r})")
    value = int(raw) if integer else float(raw)
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name} must be a finite number (got {raw!r})")
    return value


def number(env: Mapping[str, str], name: str, default: float, minimum: float, integer: bool = False,
           maximum: float | None = None) -> float:
    """A number from `env[name]` (default when unset or blank), finite, within [minimum, maximum]."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    value = parse_number(name, raw, integer)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(f"{name} must be {bound} (got {raw!r})")
    return value


def optional_int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    return int(number(env, name, 0, minimum, integer=True)) if env.get(name, "").strip() else None


def int_value(name: str, raw: str, low: int, high: int) -> int:
    value = int(parse_number(name, raw.strip(), integer=True))
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high} (got {value})")
    return value


def flag(name: str, raw: str) -> bool:
    if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
        raise SettingsError(f"{name} must be 0 or 1 (got {raw!r})")
    return raw.lower() in ("1", "true", "yes")
