"""`make run`'s launcher end to end, from a copy of the repository: demo mode (simulator + worker + web, the
simulator's accounts served live) and real mode (accounts from `.env`), each stopped by one SIGTERM."""
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures.procs import free_port
from tests.paths import ROOT
from tests.waiting import proc_alive, proc_idle, wait_for

# Not copied: they would leak this checkout's state (.env, store, venv) into what should look like a fresh clone.
SKIP = {".git", ".venv", ".cache", ".env", "tests", "bench", "docs", "__pycache__", ".pytest_cache"}
STOP_DEADLINE_S = 6.5  # web and worker stop within 5 s (honcho SIGKILLs after that); then the simulator
SCRUB = ("API_TOKEN", "REDIS_URL", "LIGHTER_BASE_URL", "LIGHTER_WS_URL", "CACHE_DIR", "PORT", "SIM_PORT",
         "DOTENV_FILE")


@dataclass
class Launch:
    proc: subprocess.Popen
    log: Path
    port: int
    marker: str

    @property
    def web(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[], Any], deadline_s: float, what: str) -> Any:
        """Until `predicate` holds (errors while the stack starts count as "not yet"); fails at once if the
        launcher exits (it is waited on between checks), and with its output at the deadline."""
        try:
            return wait_for(predicate, deadline_s, what, 0.1,
                            ignore=(requests.RequestException, OSError, ValueError, KeyError),
                            alive=proc_alive(self.proc, "launcher", self.text), idle=proc_idle(self.proc))
        except AssertionError as exc:
            tail = "" if self.proc.poll() is not None else "\n" + self.text()[-4000:]  # else the tail is in exc
            pytest.fail(f"{exc}{tail}")

    def accounts(self) -> list[dict]:
        return requests.get(f"{self.web}/api/accounts", timeout=3).json()["accounts"]

    def stop(self) -> tuple[int, float, list[int]]:
        """SIGTERM the launcher only; (exit code, seconds to exit, processes of ours still alive)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_DEADLINE_S + 5)
        finally:
            elapsed = time.monotonic() - started
            leftovers = processes_with(self.marker)
            for pid in leftovers:  # never leave strays behind, whatever the assertions say
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return code, elapsed, leftovers


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


def launch(checkout: Path, log: Path, **env_vars: str) -> Launch:
    port, marker = free_port(), uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith("Lighter_") and k not in SCRUB}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1", LB_LAUNCHER_TEST=marker, **env_vars)
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "scripts/run_local.py"], cwd=checkout, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return Launch(proc, log, port, f"LB_LAUNCHER_TEST={marker}")


def assert_stopped_cleanly(run: Launch, ports: list[int]) -> None:
    code, elapsed, leftovers = run.stop()
    assert code == 0, run.text()[-3000:]
    assert elapsed <= STOP_DEADLINE_S, f"took {elapsed:.1f}s to stop"
    assert not leftovers, f"processes left running: {leftovers}"
    assert not any(port_open(p) for p in ports)
    assert "SIGKILL" not in run.text(), "honcho had to kill something"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    target = tmp_path / "repo"
    shutil.copytree(ROOT, target, ignore=lambda _dir, names: [n for n in names if n in SKIP])
    return target


def test_demo_mode_serves_the_simulator_accounts_and_stops_cleanly(checkout: Path, tmp_path: Path):
    run = launch(checkout, tmp_path / "run.log", SIM_PORT="0", CACHE_DIR=str(tmp_path / "store"))
    try:
        demo_env = checkout / ".cache" / "demo.env"
        run.wait_for(lambda: "demo is up" in run.text(), 60, "the launcher's dashboard banner")
        assert f"http://127.0.0.1:{run.port}/" in run.text()
        assert stat.S_IMODE(demo_env.stat().st_mode) == 0o600, "demo.env holds keys: owner-only"
        values = dict(line.split("=", 1) for line in demo_env.read_text().splitlines()
                      if line and not line.startswith("#"))
        assert "CACHE_DIR" not in values, "an explicit CACHE_DIR is the user's choice, not overridden"
        sim = values["LIGHTER_BASE_URL"]
        truth = sorted(a["account_index"] for a in requests.get(f"{sim}/_sim/accounts", timeout=3).json()["accounts"])
        assert truth

        def live() -> bool:
            accounts = run.accounts()
            return sorted(a["account_index"] for a in accounts) == truth and all(
                a["sections"]["summary"]["data"] is not None and a["sections"]["orders"]["data"] is not None
                and not a["stale"] for a in accounts)

        run.wait_for(live, 30, "/api/accounts to list the simulator's accounts with live data")
        assert any((tmp_path / "store").iterdir()), "the file store lives in CACHE_DIR"
        assert len(processes_with(run.marker)) >= 4, "sanity: launcher, simulator, honcho, web, worker"
    finally:
        assert_stopped_cleanly(run, [run.port])
    assert not port_open(int(sim.rsplit(":", 1)[1])), "the simulator stopped"
    private_keys = [v for k, v in values.items() if k.endswith("_PRIVATE")]
    assert private_keys and not any(key in run.text() for key in private_keys), "a demo key reached the output"


@pytest.mark.slow  # a second whole launch (~2.5 s); demo mode stays in the fast tier
def test_real_mode_tracks_the_accounts_in_dotenv_without_a_simulator(checkout: Path, tmp_path: Path, simulator):
    # `simulator` plays the real Lighter here: the launcher must not start one of its own.
    keyed, public = simulator.control.accounts()[:2]
    (checkout / ".env").write_text("\n".join([
        f"LIGHTER_BASE_URL={simulator.base_url}",
        f"CACHE_DIR={tmp_path / 'store'}",
        f"Lighter_1_main_Account_Index={keyed['account_index']}",
        f"Lighter_1_main_API_KEY_Index={keyed['api_key_index']}",
        f"Lighter_1_main_PRIVATE={keyed['private_key']}",
        f"Lighter_1_watch_Account_Index={public['account_index']}",
    ]) + "\n")
    run = launch(checkout, tmp_path / "run.log")
    try:
        run.wait_for(lambda: "dashboard: http://127.0.0.1:" in run.text(), 60, "the launcher's dashboard banner")

        def tracked() -> bool:
            accounts = {a["account_index"]: a for a in run.accounts()}
            return (set(accounts) == {keyed["account_index"], public["account_index"]}
                    and accounts[keyed["account_index"]]["sections"]["orders"]["data"] is not None
                    and accounts[public["account_index"]]["public_only"])

        run.wait_for(tracked, 30, "/api/accounts to list the .env accounts")
        assert "demo mode" not in run.text() and not (checkout / ".cache" / "demo.env").exists()
    finally:
        assert_stopped_cleanly(run, [run.port])
    assert keyed["private_key"] not in run.text()


def test_bad_settings_stop_before_anything_starts(checkout: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("Lighter_")}
    env.update(POLL_INTERVAL="fast", SIM_PORT="0")
    result = subprocess.run([sys.executable, "scripts/run_local.py"], cwd=checkout, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2
    assert "POLL_INTERVAL" in result.stdout and "demo mode" not in result.stdout
    assert not (checkout / ".cache" / "demo.env").exists()


def _pids(run: Launch, needle: str) -> list[int]:
    """Our processes whose command line contains `needle`."""
    found = []
    for pid in processes_with(run.marker):
        with contextlib.suppress(OSError):
            if needle.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


@pytest.mark.slow  # a whole launch plus two crashes and restarts (~10 s)
def test_a_crashed_worker_or_web_is_restarted_and_says_so(checkout: Path, tmp_path: Path):
    run = launch(checkout, tmp_path / "run.log", SIM_PORT="0", CACHE_DIR=str(tmp_path / "store"))
    try:
        run.wait_for(lambda: "demo is up" in run.text(), 60, "the launcher's dashboard banner")
        (worker,) = _pids(run, "worker.py")
        os.kill(worker, signal.SIGKILL)
        run.wait_for(lambda: "worker exited with status -9; restarting in" in run.text(), 10, "the crash notice")
        run.wait_for(lambda: "worker restarted (pid" in run.text(), 10, "the restart notice")
        assert requests.get(f"{run.web}/health", timeout=3).status_code == 200, "the web kept running"
        (again,) = _pids(run, "worker.py")
        assert again != worker

        def fresh() -> bool:
            status = requests.get(f"{run.web}/api/status", timeout=3).json()
            return status["worker"]["up"] and status["worker"]["pid"] == again

        run.wait_for(fresh, 20, "the restarted worker's heartbeat")
        # The Procfile's `python web.py` becomes gunicorn's master; its workers are forks with the same command line.
        webs = _pids(run, "web.py")
        masters = [p for p in webs if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]
                   not in {str(q) for q in webs}]
        assert len(masters) == 1
        os.kill(masters[0], signal.SIGKILL)
        run.wait_for(lambda: "web exited with status -9; restarting in" in run.text(), 10, "the web's crash notice")
        run.wait_for(lambda: "web restarted (pid" in run.text(), 10, "the web's restart notice")
        run.wait_for(lambda: requests.get(f"{run.web}/health", timeout=3).status_code == 200, 30, "the web again")
    finally:
        # gunicorn's orphaned workers of the killed master exit by themselves (they watch their parent).
        assert_stopped_cleanly(run, [run.port])


def test_restart_delays_grow_to_the_cap_and_never_beyond(capsys):
    from scripts.supervise import Child

    child = Child("crasher", f"{sys.executable} -c 'raise SystemExit(3)'", dict(os.environ),
                            restart_max_s=2.0, healthy_after_s=60.0)
    child.start()
    delays, now = [], 0.0
    try:
        for _ in range(6):
            child.proc.wait(5)
            child.check(now)  # notices the exit, schedules the restart
            delays.append(child.restart_at - now)
            now = child.restart_at
            child.check(now)  # restarts
    finally:
        child.stop()
    assert 0 <= delays[0] < 1 and delays[1:] == pytest.approx([1.0, 1.618, 2.0, 2.0, 2.0])
    out = capsys.readouterr().out
    assert "crasher exited with status 3; restarting in" in out and "delays grow to at most 2 s" in out
    assert out.count("crasher restarted (pid") == 6


def test_bad_restart_settings_stop_before_anything_starts(checkout: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("Lighter_")}
    env.update(RUN_RESTART_MAX_S="soon", SIM_PORT="0")
    result = subprocess.run([sys.executable, "scripts/run_local.py"], cwd=checkout, env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "RUN_RESTART_MAX_S" in result.stdout and "demo mode" not in result.stdout
