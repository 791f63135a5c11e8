"""What the settings module reads from the environment, and what .env.example documents (shared by deploy tests)."""
from __future__ import annotations

import re

from core import settings as settings_module
from tests.paths import ROOT

_LINE = re.compile(r"^#?\s*([A-Za-z][A-Za-z0-9_]*)=(.*)$")
_NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")


def example_values() -> dict[str, str]:
    """`NAME=default` lines of .env.example, commented out or not, in file order."""
    values: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def settings_variables() -> set[str]:
    """Names core.settings reads (recorded as it reads them, WORKER_* and WEB_* tuning included)."""
    return set(settings_module.names_read())


def variable_patterns() -> list[re.Pattern]:
    """The per-account and per-proxy variable families (Lighter_{N}_{ID}_*, Lighter_{N}_PROXY_{M}_URL)."""
    from core.envnames import PATTERNS

    return list(PATTERNS)


def launcher_only() -> set[str]:
    """Variables only scripts/run_local.py reads (documented in .env.example's `make run` section)."""
    return {"SIM_PORT", "RUN_RESTART_MAX_S", "RUN_HEALTHY_AFTER_S"}


def process_variables() -> set[str]:
    """Read before settings are: the dotenv path (settings.load)."""
    return {"DOTENV_FILE"}


def documented_settings() -> tuple[set[str], list[re.Pattern]]:
    return set(example_values()), variable_patterns()
