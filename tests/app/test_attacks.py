"""Attacks on the hostile edges (issue 13) that got through, each against the real gunicorn on real sockets.

Each test is one attack that broke the edge before its fix (docs/security.md names them); the attacks that held
are the tests in test_edges.py and tests/drills/test_hostile_clients*.py.
"""
from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.app.conftest import Feeder
from tests.drills import rawws
from tests.fixtures.procs import free_port
from tests.fixtures.web import run_web
from tests.paths import ROOT
from tests.waiting import wait_for

TOKEN = "tok-attacks-0123456789"
MB = 1024 * 1024


def _drip_until_closed(port: int, head: bytes, drip: bytes, deadline_s: float) -> tuple[bytes, float | None]:
    """Send `head`, then `drip` every 0.2 s without reading more than the server sends; (what the server sent,
    seconds until it closed the connection, or None if it was still open at the deadline)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        started, answer = time.monotonic(), b""
        while time.monotonic() - started < deadline_s:
            readable, _, _ = select.select([sock], [], [], 0.2)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    return answer, time.monotonic() - started
                answer += chunk
            try:
                sock.sendall(drip)
            except OSError:
                return answer, time.monotonic() - started
        return answer, None


def test_a_body_dripped_after_the_headers_does_not_hold_the_connection(file_env):
    """Headers, then a body a byte at a time (no token needed: /health): pywsgi drained the unread body after the
    response with no deadline, so each such connection stayed open for as long as the client kept dripping.
    Now a large or chunked leftover closes the connection after the response, and a small one must arrive within
    the header deadline."""
    env = {**file_env, "API_TOKEN": TOKEN, "WEB_HEADER_TIMEOUT_S": "1"}
    with run_web(env) as web:
        cases = {
            "large": (b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n", b"a"),
            "chunked": (b"GET /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"1\r\na\r\n"),
            "small": (b"POST /api/status HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", b"a"),
        }
        for name, (head, drip) in cases.items():
            answer, closed_after = _drip_until_closed(web.port, head, drip, deadline_s=8)
            assert answer.startswith(b"HTTP/1.1 "), (name, answer[:80])
            assert closed_after is not None and closed_after < 4, (name, closed_after)
        # A client that sends its (small) body whole keeps its keep-alive connection.
        with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
            request = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            sock.sendall(request + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answers = b""
            while answers.count(b"HTTP/1.1 ") < 2:
                chunk = sock.recv(65536)
                assert chunk, answers
                answers += chunk
            assert answers.count(b"HTTP/1.1 200 OK") == 2, answers


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _worker_pid(web) -> int:  # noqa: ANN001
    children = Path(f"/proc/{web.proc.pid}/task/{web.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_ping_flood_from_a_client_that_never_reads_costs_bounded_memory(file_env):
    """Pings, as fast as the socket takes them, from a client that never reads: each is answered with a pong that
    waited in its backlog, outside the byte bound (which only covered our own frames), so the process held
    whatever the client sent (60 MB of pings in 8 s: +74 MB RSS, token-less on /stream). Now reading stops while
    more than transport.READ_PAUSE_BYTES is owed: the client's own send blocks instead."""
    env = {**file_env, "API_TOKEN": TOKEN}
    Feeder(env).track([1])
    with run_web(env) as web:
        pid = _worker_pid(web)
        for path in ("/stream", f"/ws?token={TOKEN}"):  # token-less on /stream (auth in each subscribe), and /ws
            before = _rss(pid)
            sock = rawws.handshake(web.port, path, rcvbuf=4096)
            sock.settimeout(2)
            batch, sent = rawws.frame(rawws.PING, b"x" * 125) * 512, 0
            try:
                while sent < 64 * MB:
                    sock.sendall(batch)
                    sent += len(batch)
            except TimeoutError:
                pass  # our reading stopped: what the kernel buffers hold is all the client could push
            grown = _rss(pid) - before
            sock.close()
            assert sent < 16 * MB, (path, sent)
            assert grown < 16 * MB, (path, grown)


def test_an_upgrade_without_a_websocket_version_gets_a_json_426(file_env):
    """gevent-websocket answered a missing Sec-WebSocket-Version with an empty-bodied 426 (and no header saying
    which version to use); a bad key then was never checked."""
    with run_web({**file_env, "API_TOKEN": TOKEN}) as web:
        with socket.create_connection(("127.0.0.1", web.port), timeout=5) as sock:
            sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Key: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 426"), head
        assert b"content-type: application/json" in head.lower() and b"sec-websocket-version: 13" in head.lower()
        assert json.loads(body)["status"] == 426
        assert "Traceback" not in web.log()


def _start(env: dict[str, str], program: str = "web.py") -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("Lighter_", "LIGHTER_", "REDIS_URL", "API_TOKEN", "WEB_", "WORKER_"))}
    full = {**base, "DOTENV_FILE": "", "PORT": str(free_port()), **env}
    return subprocess.run([sys.executable, program], cwd=ROOT, env=full, capture_output=True, text=True, timeout=30)


def test_settings_that_started_an_open_service_or_a_traceback_stop_the_start(tmp_path):
    """API_TOKEN of blanks started an open service (the token was taken as unset); a REDIS_URL option redis
    cannot parse passed our check and gave a traceback in each web worker; RATE_LIMIT=1/0minute was read as
    1/minute by `limits`; a .env line with an unclosed quote was skipped (API_TOKEN unset: an open service) and a
    DOTENV_FILE that is not text gave a traceback. Each now stops `python web.py` and `python worker.py` with one
    line naming the variable, never its value."""
    password = "pw-attacks-5151"
    cases = {
        "API_TOKEN": {"API_TOKEN": "   "},
        "API_TOKEN ": {"API_TOKEN": f" {TOKEN}\n"},
        "REDIS_URL": {"REDIS_URL": f"redis://:{password}@127.0.0.1:1/0?socket_timeout=abc"},
        "RATE_LIMIT": {"RATE_LIMIT": "1/0minute"},
        "WEB_HEADER_TIMEOUT_S": {"WEB_HEADER_TIMEOUT_S": "1e300"},  # no header deadline, silently
        "WEB_AUTH_FAILURE_WINDOW_S": {"WEB_AUTH_FAILURE_WINDOW_S": "1e300"},  # with Redis: blocks for 1 s
    }
    unclosed = tmp_path / "unclosed.env"  # python-dotenv skipped the line with a warning: no token, an open service
    unclosed.write_text(f'API_TOKEN="{TOKEN}\n')
    cases["DOTENV_FILE"] = {"DOTENV_FILE": str(unclosed)}
    cases["DOTENV_FILE "] = {"DOTENV_FILE": sys.executable}  # not text: a traceback (UnicodeDecodeError)
    for name, extra in cases.items():
        for program in ("web.py", "worker.py"):
            done = _start({"CACHE_DIR": str(tmp_path / "store"), **extra}, program)
            output = done.stdout + done.stderr
            assert done.returncode == 2, (name, program, output[-2000:])
            assert "Traceback" not in output and password not in output and TOKEN not in output, output
            lines = [line for line in output.splitlines() if line.strip()]
            assert len(lines) == 1 and name.strip() in lines[0], (program, lines)


def test_a_reader_cannot_run_a_resync_storm(file_env):
    """A client with the token sending `resume` (each a sync of every account) in a loop: unpaced, three such
    readers held a new client's handshake and initial sync for 9.7 s instead of 43 ms (40 accounts of 20 KB).
    /ws now takes SYNCS_PER_MINUTE `resume` or `subscribe` commands per connection and minute (as many as /stream
    takes messages); past it the client gets error{code:"too_many_messages"} and close 1008, and a newcomer
    connects at once."""
    from app.ws.route import SYNCS_PER_MINUTE

    env = {**file_env, "API_TOKEN": TOKEN}
    Feeder(env).track([1, 2])
    with run_web(env) as web:
        sock = rawws.handshake(web.port, f"/ws?token={TOKEN}")
        reader = rawws.Reader(sock)
        resume = rawws.text('{"op":"resume","since":0}')
        snapshots, error, sent = 0, None, 0
        try:
            # In batches of 10, each read back before the next: under the 64 messages allowed to wait.
            while sent <= SYNCS_PER_MINUTE + 20:
                sock.sendall(resume * 10)
                sent += 10
                while snapshots < 2 * sent:  # two accounts per resume (snapshots or a replay of updates)
                    got = reader.next(10)
                    assert got is not None, (sent, snapshots)
                    message = json.loads(got[1])
                    snapshots += message["type"] in ("snapshot", "update")
                    if message["type"] == "error":
                        error = message["code"]
        except rawws.Closed as closed:
            assert closed.code == 1008
        else:
            raise AssertionError("not closed")
        assert error == "too_many_messages"
        assert snapshots <= 2 * SYNCS_PER_MINUTE + 2, snapshots  # the initial sync, then one per resume
        started = time.monotonic()
        newcomer = rawws.handshake(web.port, f"/ws?token={TOKEN}")
        assert rawws.Reader(newcomer).until_text(lambda m: m["type"] == "status", 10) is not None
        assert time.monotonic() - started < 2
        newcomer.close()


def _upgrade(port: int, path: str, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)
        assert byte, head
        head += byte
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_tokenless_stream_handshakes_do_not_spend_the_admission_of_clients_with_the_token(file_env):
    """Token-less /stream handshakes (Lighter's way: the token comes later, in a subscribe) were paced against the
    process's total admission rate: from 4 addresses, 6 of 20 /ws clients with the token got 1013 `busy`. They
    now count against their own address only until a subscribe shows the token."""
    env = {**file_env, "API_TOKEN": TOKEN, "WEB_WS_ADMIT_PER_S": "20", "WEB_WS_ADMIT_PER_ADDRESS_PER_S": "10",
           "WEB_STREAM_AUTH_TIMEOUT_S": "30", "WEB_AUTH_FAILURES": "1000"}
    Feeder(env).track([1])
    with run_web(env) as web:
        held: list[socket.socket] = []
        outcomes: list[str] = []
        for round_ in range(3):
            started = time.monotonic()
            for source in (f"127.0.{round_ * 2 + 2}.9", f"127.0.{round_ * 2 + 3}.9"):
                held += [_upgrade(web.port, "/stream", source) for _ in range(10)]
            legit = _upgrade(web.port, f"/ws?token={TOKEN}", "127.0.0.1")
            if time.monotonic() - started > 0.8:
                legit.close()
                continue  # not within one admission window on this loaded machine: try again
            try:
                message = rawws.Reader(legit).until_text(lambda m: m["type"] in ("hello", "error"), 5)
                outcomes.append(message["type"] if message and message["type"] == "hello" else str(message))
            except rawws.Closed as closed:
                outcomes.append(f"closed {closed.code}")
            legit.close()
        assert outcomes and all(outcome == "hello" for outcome in outcomes), outcomes
        # A held token-less /stream still gets in with the token in its subscribe.
        sock = held[0]
        sock.sendall(rawws.text(json.dumps({"type": "subscribe", "channel": "account_all/1", "auth": TOKEN})))
        reader = rawws.Reader(sock)
        assert reader.until_text(lambda m: m.get("type") == "subscribed/account_all", 10) is not None
        for sock in held:
            sock.close()


ESTABLISHED = "01"  # /proc/net/tcp state


def _server_side_state(server_port: int, client_port: int) -> str | None:
    """The TCP state of the server's end of our connection, from /proc/net/tcp (None once it is gone)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            return state
    return None


def test_a_client_that_never_reads_its_responses_is_cut_at_the_send_deadline(file_env):
    """Pipelined requests for the OpenAPI document (no token needed) from a client that never reads: the handler
    blocked in sendall for ever, and the connection was still open after 75 s. A response write now has
    SEND_TIMEOUT_FACTOR header deadlines to be taken by the client's socket (3 s here, 30 s by default)."""
    from app.server import SEND_TIMEOUT_FACTOR

    # RATE_LIMIT high: its 429s are small enough for the socket buffers to take them all.
    env = {**file_env, "API_TOKEN": TOKEN, "WEB_HEADER_TIMEOUT_S": "1", "RATE_LIMIT": "1000000/minute"}
    with run_web(env) as web:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window from the start
        sock.connect(("127.0.0.1", web.port))
        sock.setblocking(False)
        request = b"GET /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
        try:
            for _ in range(5000):
                sock.send(request)
        except BlockingIOError:
            pass  # the server stopped reading them: its writes are stuck on our full window
        started = time.monotonic()
        ours = sock.getsockname()[1]
        # Our side stays ESTABLISHED (the server's FIN waits behind the bytes we never read): watch the server's.
        assert _server_side_state(web.port, ours) == ESTABLISHED
        wait_for(lambda: _server_side_state(web.port, ours) != ESTABLISHED, SEND_TIMEOUT_FACTOR * 1 + 10,
                 "the server to close its side")
        assert time.monotonic() - started >= SEND_TIMEOUT_FACTOR * 1 - 1, web.log()[-3000:]
        sock.close()
        assert "Traceback" not in web.log()
