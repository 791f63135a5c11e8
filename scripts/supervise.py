"""How `make run` (scripts/run_local.py) keeps web and worker running: each Procfile process is a `Child` in its
own process group, restarted with a capped backoff when it exits by itself; `supervise` watches them until asked to
stop; every child's output reaches ours, prefixed with its name.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from core.backoff import Retry

ROOT = Path(__file__).resolve().parent.parent
READY_DEADLINE_S = 90.0     # web answering /health
CHILD_STOP_S = 5.0          # web (gunicorn: 3 s graceful) and worker (5 s) stop within this; then SIGKILL
RESTART_INITIAL_S = 1.0     # first restart delay (random in [0, 1) s, then growing by 1.618)


def say(message: str) -> None:
    print(f"run_local | {message}", flush=True)


def die_with_parent() -> None:
    """In the child before exec: SIGTERM us if the launcher dies without cleaning up (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def pump(stream: IO[bytes], prefix: str) -> None:
    """Copy a child's remaining output to our stdout, line by line, prefixed."""
    for raw in iter(stream.readline, b""):
        sys.stdout.write(f"{prefix} | {raw.decode(errors='replace')}")
        sys.stdout.flush()
    stream.close()


class Child:
    """One Procfile process, restarted with a capped backoff whenever it exits while we are not stopping."""

    def __init__(self, name: str, command: str, env: dict[str, str], restart_max_s: float,
                 healthy_after_s: float) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.restart_max_s = restart_max_s
        self.retry = Retry(time.monotonic, initial=RESTART_INITIAL_S, cap=restart_max_s, healthy_after=healthy_after_s)
        self.proc: subprocess.Popen | None = None
        self.restart_at: float | None = None

    def start(self) -> None:
        # exec: the signal we send reaches the program, not a shell. Own process group: a terminal's Ctrl-C
        # reaches only the launcher, which stops each child exactly once.
        self.proc = subprocess.Popen(["/bin/sh", "-c", f"exec {self.command}"], cwd=ROOT, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0,
                                     preexec_fn=die_with_parent)
        self.retry.up()
        assert self.proc.stdout is not None
        threading.Thread(target=pump, args=(self.proc.stdout, self.name), daemon=True).start()

    def check(self, now: float) -> None:
        """Notice an exit and schedule the restart; restart when its time has come."""
        if self.restart_at is not None:
            if now >= self.restart_at:
                self.restart_at = None
                self.start()
                say(f"{self.name} restarted (pid {self.proc.pid if self.proc else '?'})")
            return
        if self.proc is not None and self.proc.poll() is not None:
            delay = self.retry.next_delay()
            self.restart_at = now + delay
            say(f"{self.name} exited with status {self.proc.returncode}; restarting in {delay:.1f} s "
                f"(crash {self.retry.failures} in a row; delays grow to at most {self.restart_max_s:.0f} s)")

    def stop(self) -> None:
        self.restart_at = None
        if self.proc is not None:
            stop_process(self.proc, self.name, CHILD_STOP_S)


def procfile_children(port: int, env_file: str, child_env: dict[str, str], restart_max_s: float,
                      healthy_after_s: float) -> list[Child]:
    """The Procfile's processes with the environment honcho would give them: ours, the env file over it, and
    PORT for the web."""
    from dotenv import dotenv_values
    from honcho.environ import parse_procfile

    file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    children = []
    for name, command in parse_procfile((ROOT / "Procfile").read_text()).processes.items():
        env = {**child_env, **file_values, "PORT": str(port)}
        children.append(Child(name, command, env, restart_max_s, healthy_after_s))
    return children


def stop_process(proc: subprocess.Popen, name: str, grace_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop within {grace_s:.0f} s; killing it")
            proc.kill()
    proc.wait()


def health_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def supervise(children: list[Child], simulator: subprocess.Popen | None, port: int, banner: str,
              stop: threading.Event) -> int:
    """Announce the dashboard once /health answers; restart children that exit; return when asked to stop or
    the simulator exits."""
    announced = False
    deadline = time.monotonic() + READY_DEADLINE_S
    while not stop.is_set():
        if simulator is not None and simulator.poll() is not None:
            say(f"the simulator exited (status {simulator.returncode}); stopping web and worker")
            return 1
        for child in children:
            child.check(time.monotonic())
        if not announced and health_ok(port):
            announced = True
            say(banner)
            say("press Ctrl-C to stop")
        elif not announced and time.monotonic() > deadline:
            announced = True
            say(f"web did not answer http://127.0.0.1:{port}/health within {READY_DEADLINE_S:.0f} s; see the logs")
        stop.wait(0.25)
    return 0
