"""Worker-test fixtures: a real tinyproxy (HTTP proxy with Basic auth) bound to its own egress address."""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.redis import free_port

PROXY_USER = "lbuser"
PROXY_PASSWORD = "Pr0xy-Passw0rd-s3cret"
EGRESS_ADDRESS = "127.0.0.2"  # the simulator keys egress by peer IP: this makes proxied traffic distinct


@dataclass
class TinyProxy:
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{self.port}"

    @property
    def colon_form(self) -> str:
        return f"127.0.0.1:{self.port}:{PROXY_USER}:{PROXY_PASSWORD}"


def _wait_listening(port: int, proc: subprocess.Popen, deadline_s: float = 5.0) -> None:
    end = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > end:
                raise RuntimeError("tinyproxy did not start") from None
        try:
            proc.wait(timeout=0.05)  # bounded wait on the process: fails fast if it died
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture
def tinyproxy() -> Iterator[TinyProxy]:
    binary = shutil.which("tinyproxy")
    if binary is None:
        pytest.fail("tinyproxy is not installed; `make test` installs it (apt-get install tinyproxy)")
    directory = Path(tempfile.mkdtemp(prefix="lb-tinyproxy-"))
    port = free_port()
    conf = directory / "tinyproxy.conf"
    conf.write_text(f"Port {port}\nListen 127.0.0.1\nBind {EGRESS_ADDRESS}\nTimeout 30\nMaxClients 50\n"
                    f"Allow 127.0.0.1\nBasicAuth {PROXY_USER} {PROXY_PASSWORD}\nDisableViaHeader Yes\n"
                    f"LogLevel Connect\nLogFile \"{directory / 'tinyproxy.log'}\"\n")
    proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(port, proc)
        yield TinyProxy(port, directory / "tinyproxy.log")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(directory, ignore_errors=True)
