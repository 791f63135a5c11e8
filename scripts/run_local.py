#!/usr/bin/env python3
"""`make run`: web + worker from the Procfile on this machine, plus the simulator when no account is set.

Demo mode (no `Lighter_*_Account_Index` in the environment or `.env`): start `python -m simulator`, wait for its
listening line, read its accounts from `/_sim/accounts`, write them to `.cache/demo.env` (mode 0600; simulated
keys, not real ones) and start web + worker with that file as their environment. Real mode: start web + worker
only; each process reads `.env` itself (core.settings.load()).

Like a platform, the launcher restarts a web or worker that exits by itself, after a capped backoff
(RUN_RESTART_MAX_S, default 30 s; the delay resets once the process stayed up RUN_HEALTHY_AFTER_S, default 60 s),
and says so on its output. The other process keeps running meanwhile.

PORT (default 5000) is the web port; SIM_PORT (default 8765, 0 = any free port) the simulator's. Ctrl-C or
SIGTERM stops web and worker first (SIGTERM, SIGKILL after 5 s), then the simulator. Exit status: 0 after such a
requested stop, 1 when something failed (the simulator exited), 2 for bad settings.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.env import number  # noqa: E402  (needs ROOT on sys.path)
from core.settings import SettingsError, from_env  # noqa: E402
from scripts.supervise import (  # noqa: E402
    die_with_parent,
    procfile_children,
    pump,
    say,
    stop_process,
    supervise,
)

DEFAULT_SIM_PORT = 8765
SIM_ARGS = ("--seed", "1", "--tick-ms", "500")
LISTENING = re.compile(r"simulator listening on (http://\S+?):(\d+)")
STARTUP_DEADLINE_S = 20.0   # simulator listening line
SIM_STOP_S = 3.0
RESTART_MAX_S = 30.0        # RUN_RESTART_MAX_S: the cap
HEALTHY_AFTER_S = 60.0      # RUN_HEALTHY_AFTER_S: up this long, the next crash starts the backoff again


def merged_environment(env_file: Path) -> dict[str, str]:
    """What web and worker will see: `.env` under the real environment (same precedence as settings.load)."""
    from dotenv import dotenv_values

    file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.exists() else {}
    return {**file_values, **os.environ}


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_simulator(port: int, child_env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start the simulator in its own process group (we stop it, last) and wait until it listens."""
    cmd = [sys.executable, "-u", "-m", "simulator", "--host", "127.0.0.1", "--port", str(port), *SIM_ARGS]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            process_group=0, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    seen: list[str] = []
    found: list[str] = []

    def read_until_listening() -> None:
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode(errors="replace")
            seen.append(line)
            match = LISTENING.search(line)
            if match:
                found.append(f"{match.group(1)}:{match.group(2)}")
                return

    reader = threading.Thread(target=read_until_listening, daemon=True)
    reader.start()
    reader.join(STARTUP_DEADLINE_S)
    if not found:
        stop_process(proc, "simulator", SIM_STOP_S)
        output = "".join(seen).strip() or "(no output)"
        raise RuntimeError(f"the simulator did not report listening within {STARTUP_DEADLINE_S:.0f} s:\n{output}")
    threading.Thread(target=pump, args=(proc.stdout, "simulator"), daemon=True).start()
    return proc, found[0]


def simulator_accounts(base_url: str) -> list[dict]:
    with urllib.request.urlopen(f"{base_url}/_sim/accounts", timeout=5) as response:
        accounts = json.load(response)["accounts"]
    if not accounts:
        raise RuntimeError("the simulator reported no accounts")
    return accounts


def write_demo_env(path: Path, base_url: str, accounts: list[dict], cache_dir: str | None) -> None:
    """The demo's environment for web + worker, private to this user (it holds the simulator's demo keys)."""
    ws_url = "ws" + base_url[len("http"):] + "/stream"
    lines = ["# Written by scripts/run_local.py for `make run` in demo mode; rewritten on every start.",
             "# These are the simulator's generated demo keys, not real Lighter keys.",
             f"LIGHTER_BASE_URL={base_url}", f"LIGHTER_WS_URL={ws_url}"]
    if cache_dir:
        lines.append(f"CACHE_DIR={cache_dir}")
    for n, account in enumerate(accounts, start=1):
        prefix = f"Lighter_1_{n}_"
        lines.append(f"{prefix}Account_Index={account['account_index']}")
        if account.get("private_key"):
            lines.append(f"{prefix}API_KEY_Index={account['api_key_index']}")
            lines.append(f"{prefix}PRIVATE={account['private_key']}")
        if account.get("public_key"):
            lines.append(f"{prefix}PUBLIC={account['public_key']}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write("\n".join(lines) + "\n")


def install_stop_handlers(stop: threading.Event, caught: list[int]) -> None:
    def handler(signum: int, _frame: object) -> None:
        if not caught:
            say(f"{signal.Signals(signum).name} received; stopping")
        caught.append(signum)
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def child_environment() -> dict[str, str]:
    """Our environment, with the virtualenv first on PATH so the Procfile's `gunicorn` and `python` are ours."""
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    if (Path(bin_dir) / "activate").exists():
        env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
    return env


def start_demo(merged: dict[str, str], child_env: dict[str, str], port: int) -> tuple[subprocess.Popen, str, str]:
    """Simulator up, its accounts in .cache/demo.env; returns (simulator, env file for web and worker, banner)."""
    sim_port = int(merged.get("SIM_PORT", "").strip() or DEFAULT_SIM_PORT)
    if "SIM_PORT" not in merged and not port_is_free(sim_port):
        say(f"port {sim_port} is busy; the simulator takes any free port instead")
        sim_port = 0
    say("no Lighter_*_Account_Index configured: demo mode, starting the simulator")
    simulator, base_url = start_simulator(sim_port, child_env)
    try:
        accounts = simulator_accounts(base_url)
        cache_dir = None if merged.get("CACHE_DIR", "").strip() else str(ROOT / ".cache" / "demo-store")
        demo_env_file = ROOT / ".cache" / "demo.env"
        write_demo_env(demo_env_file, base_url, accounts, cache_dir)
    except BaseException:
        stop_process(simulator, "simulator", SIM_STOP_S)
        raise
    indexes = ", ".join(str(a["account_index"]) for a in accounts)
    banner = f"demo is up: dashboard http://127.0.0.1:{port}/ (simulated accounts {indexes} from {base_url})"
    return simulator, str(demo_env_file), banner


def dotenv_path() -> Path | None:
    """The file web and worker load (core.settings.load): DOTENV_FILE, default `.env`, relative to the repository."""
    name = os.environ.get("DOTENV_FILE", ".env")
    return ROOT / name if name else None


def run() -> int:
    env_file = dotenv_path()
    merged = merged_environment(env_file) if env_file else dict(os.environ)
    try:
        settings = from_env(merged)
    except SettingsError as exc:
        say(f"configuration error: {exc}")
        return 2
    port = settings.port
    try:
        restart_max_s = number(merged, "RUN_RESTART_MAX_S", RESTART_MAX_S, minimum=1)
        healthy_after_s = number(merged, "RUN_HEALTHY_AFTER_S", HEALTHY_AFTER_S, minimum=1)
    except SettingsError as exc:
        say(f"configuration error: {exc}")
        return 2
    if not port_is_free(port):
        say(f"port {port} is in use (another `make run`?); stop it or choose another port: PORT=8000 make run")
        return 1
    stop, caught = threading.Event(), []
    install_stop_handlers(stop, caught)
    child_env = child_environment()
    simulator = None
    try:
        if settings.accounts:
            names = ", ".join(str(a.account_index) for a in settings.accounts)
            say(f"tracking configured accounts {names} on {settings.lighter_base_url}")
            env_file_for_children, banner = os.devnull, f"dashboard: http://127.0.0.1:{port}/"
        else:
            simulator, env_file_for_children, banner = start_demo(merged, child_env, port)
        if stop.is_set():
            return 0
        children = procfile_children(port, env_file_for_children, child_env, restart_max_s, healthy_after_s)
        try:
            for child in children:
                child.start()
            status = supervise(children, simulator, port, banner, stop)
        finally:
            stoppers = [threading.Thread(target=child.stop) for child in children]  # in parallel: one deadline
            for thread in stoppers:
                thread.start()
            for thread in stoppers:
                thread.join()
        return 0 if caught else status  # a requested stop is a success (and keeps make from reporting an error)
    except (RuntimeError, OSError, urllib.error.URLError, KeyError, ValueError) as exc:
        say(f"could not start: {exc}")
        return 1
    finally:
        if simulator is not None:
            stop_process(simulator, "simulator", SIM_STOP_S)
        say("stopped")


if __name__ == "__main__":
    sys.exit(run())
