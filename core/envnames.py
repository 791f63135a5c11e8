"""Unknown and misspelt setting names: a typo must stop the start, not silently fall back to a default.

`API_TOKN=...` would otherwise start an open service, `Lighter_1_main_Acount_Index=5` would track nothing and
`LIGHTER_BASEURL=...` would talk to mainnet. Two rules, checked over the whole environment:
- a variable in one of our namespaces (NAMESPACES) that no setting reads is unknown;
- any other variable that is a near miss of a setting we read (same letters once case, `_` and `-` are ignored, or
  one or two edits away for longer names) is a misspelling.
Messages name the variable and the setting it resembles, never a value. The names we read come from
core.env.RecordingEnv, so no list of known names is kept by hand; PATTERNS and FOREIGN name what it cannot see.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from core.accounts import ACCOUNT_FIELDS, ACCOUNT_VAR, PROXY_VAR
from core.env import SettingsError

# Prefixes that only our settings use (case-insensitive: `lighter_` and `Lighter_` both are ours).
NAMESPACES = ("LIGHTER_", "WORKER_", "WEB_", "UPSTREAM_", "HISTORY_", "ALERTS_", "METRICS_")

# Per-account and per-proxy variables: read by pattern, so a recording cannot list them.
PATTERNS = (ACCOUNT_VAR, PROXY_VAR)

# Ours or our platform's, but read by something other than core.settings: gunicorn reads WEB_CONCURRENCY itself,
# settings.load reads DOTENV_FILE, Render reads PYTHON_VERSION.
FOREIGN = frozenset({"WEB_CONCURRENCY", "DOTENV_FILE", "PYTHON_VERSION"})

_SPLIT_ACCOUNT = re.compile(r"(?i)lighter_([0-9]+)_([A-Za-z0-9]+)_(.+)", re.ASCII)


def check(environ: Mapping[str, str], read: Iterable[str]) -> None:
    """Raise SettingsError naming every unknown or misspelt variable in `environ`; `read` is what settings read."""
    known = set(read) | FOREIGN
    problems = [problem for name in sorted(environ) if (problem := _problem(name, known))]
    if problems:
        raise SettingsError("; ".join(problems))


def _problem(name: str, known: set[str]) -> str | None:
    if name in known or any(p.fullmatch(name) for p in PATTERNS):
        return None
    resembles = _resembles(name, known)
    hint = f" (did you mean {resembles}?)" if resembles else ""
    if resembles:
        return f"{name} is not a setting{hint}"
    if name.upper().startswith(NAMESPACES):
        return f"{name} is not a setting (the settings are listed in .env.example)"
    return None


def _resembles(name: str, known: set[str]) -> str | None:
    """The known setting `name` is most likely a misspelling of, if any."""
    candidates = set(known)
    account = _SPLIT_ACCOUNT.fullmatch(name)
    if account:
        group, ident, rest = account.groups()
        candidates |= {f"Lighter_{group}_{ident}_{field}" for field in ACCOUNT_FIELDS}
        proxy = re.match(r"[0-9]+", rest)
        candidates.add(f"Lighter_{group}_PROXY_{proxy.group() if proxy else 1}_URL")
    best: tuple[int, str] | None = None
    for candidate in candidates:
        distance = _distance(_folded(name), _folded(candidate))
        if distance <= _allowed(candidate) and (best is None or (distance, candidate) < best):
            best = (distance, candidate)
    return best[1] if best else None


def _folded(name: str) -> str:
    return name.upper().replace("_", "").replace("-", "")


def _allowed(candidate: str) -> int:
    """Edits tolerated: none for short names (PORT is not a misspelling of POST), more as names grow."""
    length = len(_folded(candidate))
    return 0 if length < 6 else 1 if length < 11 else 2


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]
