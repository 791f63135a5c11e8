"""A description of the machine and software a benchmark ran on, for the results file and the docs."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

import psutil

from bench.procs import ROOT

PACKAGES = ("gunicorn", "gevent", "gevent-websocket", "flask", "flask-limiter", "websockets", "redis", "orjson")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _command(*cmd: str) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def describe() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    commit = _command("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    return {"nproc": os.cpu_count(), "cpu_model": _cpu_model(),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "kernel": platform.release(),
            "python": sys.version.split()[0], "packages": versions, "wrk": _command("wrk", "--version"),
            "redis_server": _command("redis-server", "--version"), "git_commit": commit,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
