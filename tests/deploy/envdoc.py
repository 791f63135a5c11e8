"""What the settings module reads from the environment, and what .env.example documents (shared by deploy tests)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

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
    """Names core/settings.py reads: env.get("NAME"), env["NAME"] and helper(env, "NAME", ...)."""
    tree = ast.parse(Path(settings_module.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            args = node.args
            env_at = [i for i, a in enumerate(args) if isinstance(a, ast.Name) and a.id == "env"]
            if (isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "env"):
                candidates = args[:1]                                   # env.get("NAME", default)
            else:
                candidates = args[env_at[0] + 1:env_at[0] + 2] if env_at else []  # helper(env, "NAME", ...)
            names.update(a.value for a in candidates if isinstance(a, ast.Constant)
                         and isinstance(a.value, str) and _NAME.match(a.value))
        elif (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "env"
              and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
            names.add(node.slice.value)
    return names


def variable_patterns() -> list[re.Pattern]:
    """The per-account and per-proxy variable families (Lighter_{N}_{ID}_*, Lighter_{N}_PROXY_{M}_URL)."""
    return [p for p in vars(settings_module).values()
            if isinstance(p, re.Pattern) and p.pattern.startswith("^Lighter_")]


def launcher_only() -> set[str]:
    """Variables only scripts/run_local.py reads (documented in .env.example's `make run` section)."""
    return {"SIM_PORT", "RUN_RESTART_MAX_S", "RUN_HEALTHY_AFTER_S"}


def process_variables() -> set[str]:
    """Not found by the scan above: gunicorn's worker count, the dotenv path, the worker tuning knobs."""
    from dataclasses import fields

    from core.tuning import WebTuning, WorkerTuning

    return ({"WEB_CONCURRENCY", "DOTENV_FILE"} | {f"WORKER_{f.name.upper()}" for f in fields(WorkerTuning)}
            | {f"WEB_{f.name.upper()}" for f in fields(WebTuning)})


def documented_settings() -> tuple[set[str], list[re.Pattern]]:
    return set(example_values()), variable_patterns()
