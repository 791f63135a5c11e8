"""`make run`'s launcher end to end in demo mode: simulator + worker + web from a copy of the repository, the
simulator's accounts served live by /api/accounts, and SIGTERM stopping every process it started."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from tests.fixtures.redis import free_port

ROOT = Path(__file__).resolve().parents[2]
# Not copied: they would leak this checkout's state (.env, store, venv) into what should look like a fresh clone.
SKIP = {".git", ".venv", ".cache", ".env", "tests", "bench", "docs", "__pycache__", ".pytest_cache"}
STOP_DEADLINE_S = 6.5  # web and worker stop within 5 s (honcho SIGKILLs after that); then the simulator


def wait_for(proc: subprocess.Popen, log: Path, predicate: Callable[[], Any], deadline_s: float, what: str) -> Any:
    end = time.monotonic() + deadline_s
    while True:
        with contextlib.suppress(requests.RequestException, OSError, ValueError, KeyError):
            value = predicate()
            if value:
                return value
        if proc.poll() is not None:
            pytest.fail(f"launcher exited ({proc.returncode}) while waiting for {what}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > end:
            pytest.fail(f"timed out after {deadline_s}s waiting for {what}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.1)  # waits on the launcher itself, so a crash fails fast


def processes_with(marker: str) -> list[int]:
    """Live processes whose environment carries `marker`: everything the launcher started, at any depth."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(ROOT, target, ignore=lambda _dir, names: [n for n in names if n in SKIP])
    return target


def test_demo_mode_serves_the_simulator_accounts_and_stops_cleanly(checkout: Path, tmp_path: Path):
    port, marker = free_port(), f"LB_LAUNCHER_TEST={uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("Lighter_") and k not in ("API_TOKEN", "REDIS_URL", "LIGHTER_BASE_URL",
                                                         "LIGHTER_WS_URL")}
    env.update(PORT=str(port), SIM_PORT="0", CACHE_DIR=str(tmp_path / "store"), PYTHONUNBUFFERED="1")
    env[marker.split("=")[0]] = marker.split("=")[1]
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "scripts/run_local.py"], cwd=checkout, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    web = f"http://127.0.0.1:{port}"
    try:
        demo_env = checkout / ".cache" / "demo.env"
        wait_for(proc, log, lambda: "demo is up" in log.read_text(), 60, "the launcher's dashboard banner")
        assert f"http://127.0.0.1:{port}/" in log.read_text()
        assert stat.S_IMODE(demo_env.stat().st_mode) == 0o600, "demo.env holds keys: owner-only"
        values = dict(line.split("=", 1) for line in demo_env.read_text().splitlines()
                      if line and not line.startswith("#"))
        assert "CACHE_DIR" not in values, "an explicit CACHE_DIR is the user's choice, not overridden"
        sim = values["LIGHTER_BASE_URL"]
        truth = sorted(a["account_index"] for a in requests.get(f"{sim}/_sim/accounts", timeout=3).json()["accounts"])
        assert truth

        def live() -> list[dict] | None:
            accounts = requests.get(f"{web}/api/accounts", timeout=3).json()["accounts"]
            ready = sorted(a["account_index"] for a in accounts) == truth and all(
                a["sections"]["summary"]["data"] is not None and a["sections"]["orders"]["data"] is not None
                and not a["stale"] for a in accounts)
            return accounts if ready else None

        wait_for(proc, log, live, 30, "/api/accounts to list the simulator's accounts with live data")
        assert any((tmp_path / "store").iterdir()), "the file store lives in CACHE_DIR"
        assert processes_with(marker), "sanity: the marker reaches the children"
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=STOP_DEADLINE_S + 5)
        finally:
            elapsed = time.monotonic() - started
            leftovers = processes_with(marker)
            for pid in leftovers:  # never leave strays behind, whatever the assertions below say
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert code == 0, log.read_text()[-3000:]
    assert elapsed <= STOP_DEADLINE_S, f"took {elapsed:.1f}s to stop"
    assert not leftovers, f"processes left running: {leftovers}"
    assert not port_open(port) and not port_open(int(sim.rsplit(":", 1)[1]))
    text = log.read_text()
    assert "SIGKILL" not in text, "honcho had to kill something"
    private_keys = [v for k, v in values.items() if k.endswith("_PRIVATE")]
    assert private_keys and not any(key in text for key in private_keys), "a demo key reached the output"


def test_bad_settings_stop_before_anything_starts(checkout: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("Lighter_")}
    env.update(POLL_INTERVAL="fast", SIM_PORT="0")
    result = subprocess.run([sys.executable, "scripts/run_local.py"], cwd=checkout, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "POLL_INTERVAL" in result.stdout and "demo mode" not in result.stdout
    assert not (checkout / ".cache" / "demo.env").exists()
