"""Hostile edges (issue 13, items 1, 4 and 5; docs/security.md) against the real gunicorn, on real sockets.

Each test is one row of the issue's table, at a size a laptop runs in seconds; the full-size figures are drills
(tests/drills/test_hostile_clients_floods.py).
"""
from __future__ import annotations

import json
import re
import select
import socket
import time

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from tests.app.conftest import Feeder, open_ws, until
from tests.drills import rawws
from tests.fixtures.web import run_web
from tests.waiting import wait_for

TOKEN = "tok-edges-0123456789"


def metric(url: str, name: str) -> float:
    """The sum of `name` over its label sets (lb_ws_clients: every route)."""
    text = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.MULTILINE))


def raw_exchange(port: int, data: bytes, source: str = "127.0.0.1", timeout: float = 10.0) -> bytes:
    """Send `data`, then read until the server closes (a timeout fails the test)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass  # the server may reset after answering a request it did not read whole
        return answer


def json_error(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    return status, json.loads(body)


def closed_with(ws, deadline_s: float = 5.0) -> int:
    with pytest.raises(ConnectionClosed):
        while True:
            ws.recv(timeout=deadline_s)
    return ws.protocol.close_rcvd.code


# -- item 1: no token, no slot --------------------------------------------------------------------------------
def test_tokenless_connections_hold_no_slot(file_env):
    """Row 1 and 2: 20 token-less /stream upgrades and a stream of token-less /ws connects with WS_MAX_CLIENTS=20
    leave every slot to the clients with the token; the token-less /stream ones are closed at the auth deadline."""
    env = {**file_env, "API_TOKEN": TOKEN, "WS_MAX_CLIENTS": "20", "WEB_STREAM_AUTH_TIMEOUT_S": "2",
           "WEB_AUTH_FAILURES": "1000"}
    Feeder(env).track([1])
    with run_web(env) as web:
        squatters = [rawws.handshake(web.port, "/stream") for _ in range(20)]
        opened = time.monotonic()
        # Token-less /ws connects that never answer our close (the old code kept each registered for the 5 s
        # grace): refused with 4001, never registered, and cut 1 s after the close if they do not answer it.
        refused_ws = [rawws.handshake(web.port, "/ws") for _ in range(20)]
        valid = [open_ws(f"{web.ws_url}?token={TOKEN}") for _ in range(20)]  # every slot is still free
        try:
            for ws in valid:
                assert json.loads(ws.recv(timeout=10))["type"] == "hello"
            assert metric(web.url, "lb_ws_clients") == 20
            for sock in refused_ws:
                reader = rawws.Reader(sock)
                assert reader.close_code(5) == (True, 4001)
                ended, _ = rawws.drain_to_eof(sock, 3)  # we never answered: the server ends TCP after 1 s
                sock.close()
                assert ended
            assert time.monotonic() - opened < 8
            for sock in squatters:  # closed 1008 at the deadline (2 s), well before the 5 s close grace
                closed, code = rawws.Reader(sock).close_code(10)
                assert closed and code == 1008, (closed, code)
                sock.close()
            assert time.monotonic() - opened < 8
        finally:
            for ws in valid:
                ws.close()


def test_stream_token_in_a_subscribe_takes_a_slot_then(file_env):
    """Lighter's way (auth in each subscribe) still works: the slot is taken at the first authenticated subscribe,
    and a full server then refuses with 1013."""
    env = {**file_env, "API_TOKEN": TOKEN, "WS_MAX_CLIENTS": "1"}
    Feeder(env).track([1])
    stream = "ws://127.0.0.1:{}/stream"
    with run_web(env) as web, open_ws(stream.format(web.port)) as lighter:
        assert json.loads(lighter.recv(timeout=10))["type"] == "connected"
        assert metric(web.url, "lb_ws_clients") == 0
        lighter.send(json.dumps({"type": "subscribe", "channel": "account_all/1", "auth": TOKEN}))
        assert until(lighter, lambda m: m["type"] == "subscribed/account_all")["channel"] == "account_all:1"
        assert metric(web.url, "lb_ws_clients") == 1
        with open_ws(stream.format(web.port)) as second:
            assert json.loads(second.recv(timeout=10))["type"] == "connected"
            second.send(json.dumps({"type": "subscribe", "channel": "account_all/1", "auth": TOKEN}))
            assert closed_with(second) == 1013


def test_refused_tokens_spend_a_budget_on_every_route(redis_env):
    """Row 7: wrong tokens on /metrics, REST, /ws and /stream count against one budget per address (in Redis: one
    for both servers); once spent, 429 JSON with Retry-After, and close 1008 on WebSockets, right token included."""
    env = {**redis_env, "API_TOKEN": TOKEN, "WEB_AUTH_FAILURES": "7", "WEB_AUTH_FAILURE_WINDOW_S": "30",
           "WEB_STREAM_AUTH_TIMEOUT_S": "1"}
    Feeder(env).track([1])
    wrong = {"Authorization": "Bearer wrong-guess"}
    with run_web(env) as a, run_web(env) as b:
        assert requests.get(a.url + "/metrics", headers=wrong, timeout=5).status_code == 401
        assert requests.get(a.url + "/api/accounts/1", headers=wrong, timeout=5).status_code == 401
        assert requests.get(a.url + "/api/v1/account?by=index&value=1", headers=wrong, timeout=5).status_code == 401
        with open_ws(f"{a.ws_url}?token=wrong") as ws:
            assert closed_with(ws) == 4001
        with open_ws(f"ws://127.0.0.1:{a.port}/stream?auth=wrong") as ws:
            assert closed_with(ws) == 1008
        with open_ws(f"ws://127.0.0.1:{a.port}/stream") as ws:  # a wrong `auth` in a subscribe counts too
            ws.send(json.dumps({"type": "subscribe", "channel": "account_all/1", "auth": "wrong"}))
            assert until(ws, lambda m: m.get("error", {}).get("code") == 20013)
        with open_ws(f"ws://127.0.0.1:{a.port}/stream") as ws:  # never authenticated: closed at the deadline
            assert closed_with(ws) == 1008
        # The right token counts nothing: its 200 turns 429 only when that /stream's refusal is counted.
        right = {"Authorization": f"Bearer {TOKEN}"}
        wait_for(lambda: requests.get(a.url + "/metrics", headers=right, timeout=5).status_code == 429, 5,
                 "the unauthenticated /stream counted as the 7th failure")
        # That was the 7th failure: the budget is spent, and the address is refused whatever it presents.
        for headers in (wrong, {"Authorization": f"Bearer {TOKEN}"}):
            response = requests.get(a.url + "/metrics", headers=headers, timeout=5)
            assert response.status_code == 429, response.status_code
            assert response.json()["status"] == 429 and 0 < int(response.headers["Retry-After"]) <= 30
        with open_ws(f"{a.ws_url}?token={TOKEN}") as ws:
            assert until(ws, lambda m: m["type"] == "error")["code"] == "too_many_failures"
            assert closed_with(ws) == 1008
        # The other server shares the count (Redis): its first failure from this address is already over budget.
        assert requests.get(b.url + "/metrics", headers=wrong, timeout=5).status_code == 401
        assert requests.get(b.url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=5).status_code == 429
        # Another address is not affected.
        answer = raw_exchange(a.port, f"GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                                      "Connection: close\r\n\r\n".encode(), source="127.0.0.2")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:80]


# -- items 4 and 5: slow and malformed HTTP -------------------------------------------------------------------
def test_malformed_requests_get_json_4xx_and_no_secret_reaches_the_log(file_env):
    """Rows 6 and 8: `HTTP/9.9` with ?token=, a bad Sec-WebSocket-Key, an HTTP/1.0 upgrade: JSON 4xx, no
    traceback, and neither our token nor any presented one in the web's log."""
    env = {**file_env, "API_TOKEN": TOKEN}
    Feeder(env).track([1])
    guess = "guess-6d3f1a"
    upgrade = ("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {TOKEN}\r\n")
    with run_web(env) as web:
        cases = [
            (f"GET /api/status?token={TOKEN} HTTP/9.9\r\nHost: x\r\n\r\n", 400),
            (f"GET /api/status?token={guess}&x=1 HTTP/9.9\r\n\r\n", 400),
            (f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: !!not-base64!!\r\n\r\n", 400),
            (f"GET /ws HTTP/1.1\r\nHost: x\r\n{upgrade}Sec-WebSocket-Key: c2hvcnQ=\r\n\r\n", 400),
            (f"GET /stream?auth={TOKEN} HTTP/1.0\r\nHost: x\r\n{upgrade}"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 400),
            ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 426),
            (f"GET /{'a' * 9000}?token={TOKEN} HTTP/1.1\r\n\r\n", 414),
        ]
        for request, expected in cases:
            status, body = json_error(raw_exchange(web.port, request.encode()))
            assert status == expected and body["status"] == expected, (request[:60], status, body)
        assert requests.get(web.url + "/health", timeout=5).status_code == 200
        wait_for(lambda: "HTTP/9.9" in web.log(), 5, "the server's error line for HTTP/9.9")
        log = web.log()
        assert TOKEN not in log and guess not in log, log[-2000:]
        assert "Traceback" not in log and "Invalid http version" in log, log[-2000:]


def test_header_deadline_and_per_address_cap(file_env):
    """Row 5 at small size: partial headers are cut at WEB_HEADER_TIMEOUT_S (408 JSON), an address may hold
    WEB_CONNS_PER_ADDRESS connections (the next is answered 429 at once), and other addresses are unaffected."""
    env = {**file_env, "WEB_HEADER_TIMEOUT_S": "1.5", "WEB_CONNS_PER_ADDRESS": "5"}
    Feeder(env).track([1])
    with run_web(env) as web:
        partial = []
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", web.port), timeout=10, source_address=("127.0.0.2", 0))
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            partial.append(sock)
        started = time.monotonic()
        wait_for(lambda: _refused_at_once(web.port), 5, "the 6th connection from the address refused with 429")
        answer = raw_exchange(web.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200"), answer[:60]  # 127.0.0.1 has its own count
        for sock in partial:
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            sock.close()
            status, body = json_error(answer)
            assert status == 408 and body["status"] == 408
        assert time.monotonic() - started < 5
        # Trickling one header byte at a time does not extend the deadline: it is for the whole header block.
        with socket.create_connection(("127.0.0.1", web.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            began, answered = time.monotonic(), False
            while not answered and time.monotonic() - began < 6:
                answered = bool(select.select([sock], [], [], 0.2)[0])  # the server's answer, or wait 0.2 s
                if not answered:
                    try:
                        sock.sendall(b"X")
                    except OSError:
                        answered = True
            elapsed = time.monotonic() - began
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
        assert answered and elapsed < 4, elapsed
        assert json_error(answer)[0] == 408


def _refused_at_once(port: int) -> bool:
    answer = raw_exchange(port, b"", source="127.0.0.2", timeout=3)
    if not answer:
        return False
    status, body = json_error(answer)
    return status == 429 and body["status"] == 429


def test_handshakes_past_the_admission_rate_get_1013_with_a_retry_hint(file_env):
    """Admission pacing through the real server: past WEB_WS_ADMIT_PER_ADDRESS_PER_S handshakes in a second, a
    client gets error{code:"busy", retry_after_s} and close 1013 before any initial sync."""
    env = {**file_env, "WEB_WS_ADMIT_PER_ADDRESS_PER_S": "3"}
    Feeder(env).track([1])
    with run_web(env) as web:
        outcomes = []
        for _ in range(8):  # well within one second
            sock = rawws.handshake(web.port, "/ws")
            reader = rawws.Reader(sock)
            first = reader.until_text(lambda m: m["type"] in ("hello", "error"), 5)
            outcomes.append(first)
            if first["type"] == "error":
                assert reader.close_code(5) == (True, 1013)
            sock.close()
        busy = [m for m in outcomes if m["type"] == "error"]
        assert busy and all(m["code"] == "busy" and m["retry_after_s"] == 1 for m in busy), outcomes
        assert 1 <= sum(m["type"] == "hello" for m in outcomes) <= 6  # 3 per one-second window; at most two windows
        wait_for(lambda: _hello(web.port), 5, "admission again once the second has passed")


def _hello(port: int) -> bool:
    sock = rawws.handshake(port, "/ws")
    try:
        return rawws.Reader(sock).until_text(lambda m: m["type"] in ("hello", "error"), 5)["type"] == "hello"
    finally:
        sock.close()


def test_every_test_docs_security_names_exists():
    """docs/security.md names the test that holds each limit: each of them is in the suite."""
    from tests.paths import DOCS, ROOT

    named = set(re.findall(r"\b(test_\w+)", (DOCS / "security.md").read_text()))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), re.MULTILINE))
        defined.add(path.stem)
    assert named and not named - defined, sorted(named - defined)
