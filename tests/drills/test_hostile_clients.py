"""Drills 4 and 5: hostile /ws clients against one live stack, while a normal /ws client and a REST poller watch.

4. A hundred clients complete the handshake and never read again: the server must cut each one off at its queue
   bound, stay responsive (/health stays fast) and keep the normal client's feed complete and in order.
5. /ws fuzzing: bytes that are not HTTP, random bytes after the handshake, malformed JSON, unknown ops, binary,
   non-UTF-8, oversized and lying frames, protocol violations, garbage floods and subscribe/unsubscribe churn.
   The server answers with error frames or closes (with the documented codes), never crashes, and nobody else
   notices. (REST is fuzzed with schemathesis in tests/app/test_integration.py, so not again here.)
Issue 13's bytes, bursts and half-open connections, each on a web of its own: test_hostile_clients_floods.py.
"""
from __future__ import annotations

import json
import os
import random
import socket
import statistics
import threading
import time

import pytest

from tests.drills import rawws
from tests.drills.clients import RestPoller, WsWatcher, now_ms
from tests.drills.helpers import Stack, live_stack
from tests.drills.hostile import SLOW_DROPS, HealthProbe, metric_value, p95

pytestmark = pytest.mark.drill
NEVER_READERS = 100
SEED = int(os.environ.get("DRILL_SEED", "6"))


def metric(stack: Stack, name: str) -> float:
    return metric_value(stack.get("/metrics").text, name)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("hostile-drill")
    with live_stack(log_dir, {"CACHE_DIR": str(log_dir / "store")}, accounts=2) as stack:
        stack.wait_until(stack.fresh_everywhere, 20, "fresh data")
        watcher = WsWatcher(stack.web.ws_url, name="normal")
        poller = RestPoller(stack.web.url, stack.accounts, every_s=0.2)
        try:
            yield stack, watcher, poller
        finally:
            watcher.close()
            poller.close()


def assert_bystanders_fine(stack: Stack, watcher: WsWatcher, poller: RestPoller, since_ms: int) -> None:
    stack.assert_alive()
    assert watcher.closed is None, watcher.closed
    assert watcher.since(since_ms, ("update",)), "the normal client stopped receiving updates"
    assert watcher.violations == [] and watcher.resyncs == 0, watcher.violations[:10]
    assert watcher.missing_seqs() == []
    assert poller.violations == [] and not poller.errors, (poller.violations[:10], poller.errors[:5])
    assert stack.get("/health").status_code == 200


def test_100_clients_that_never_read(hostile):
    stack, watcher, poller = hostile
    started = now_ms()
    before = metric(stack, SLOW_DROPS)
    probe = HealthProbe(stack.web.url)
    sockets = []
    try:
        # A tiny receive window, a completed handshake, then never another recv.
        sockets = [rawws.handshake(stack.web.port, rcvbuf=4096) for _ in range(NEVER_READERS)]
        opened = time.monotonic()
        assert metric(stack, "lb_ws_clients") >= NEVER_READERS + 1
        stack.wait_until(lambda: metric(stack, SLOW_DROPS) >= before + NEVER_READERS, 60,
                         f"all {NEVER_READERS} never-reading clients cut off at the queue bound", interval=0.25)
        cut_after = time.monotonic() - opened
        # Cut means gone: the writers are released (after the close-frame grace) and only our client remains.
        stack.wait_until(lambda: metric(stack, "lb_ws_clients") == 1, 20, "the cut clients unregistered",
                         interval=0.25)
        assert metric(stack, "lb_ws_frames_dropped_total") > 0
    finally:
        probe.close()
    # From the clients' side: whatever was in flight, then the server ended the TCP connection.
    for sock in sockets:
        ended, _ = rawws.drain_to_eof(sock, 10)
        sock.close()
        assert ended, "a cut client's connection was left open"
    latencies = sorted(probe.latencies)
    median, slow = statistics.median(latencies), p95(latencies)
    print(f"drill: {NEVER_READERS} never-readers cut within {cut_after:.1f}s; /health median {median * 1000:.1f} ms, "
          f"p95 {slow * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms over {len(latencies)} probes")
    assert not probe.failures, probe.failures[:5]
    assert median < 0.05 and slow < 0.25 and latencies[-1] < 2.0, (slow, latencies[-1])
    assert_bystanders_fine(stack, watcher, poller, started)


# -- fuzzing ---------------------------------------------------------------------------------------------------
def _connect(stack: Stack) -> tuple[socket.socket, rawws.Reader]:
    sock = rawws.handshake(stack.web.port)
    reader = rawws.Reader(sock)
    hello = reader.until_text(lambda m: m["type"] == "hello", 10)
    assert hello is not None
    return sock, reader


def _expect_error(reader: rawws.Reader, code: str) -> None:
    got = reader.until_text(lambda m: m["type"] == "error", 10)
    assert got is not None and got["code"] == code, got


def test_ws_fuzzing(hostile):
    stack, watcher, poller = hostile
    started = now_ms()
    rng = random.Random(SEED)
    tracked = stack.accounts

    # Not HTTP at all, and HTTP that is not a valid upgrade: an HTTP error or a closed socket, quickly.
    for blob in [os.urandom(512), b"\x16\x03\x01\x02\x00" + os.urandom(300), b"GET /ws HTTP/1.1\r\n\r\n",
                 b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n", b"GET /ws?since=" + b"9" * 8000 + b" HTTP/1.1\r\n\r\n"]:
        with socket.create_connection(("127.0.0.1", stack.web.port), timeout=10) as sock:
            sock.sendall(blob)
            sock.shutdown(socket.SHUT_WR)
            answer = b""
            while chunk := sock.recv(65536):  # until the server closes (timeout = failure)
                answer += chunk
            assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer[:80]

    # Well-framed nonsense: an error frame each, the connection stays usable.
    sock, reader = _connect(stack)
    cases = [(rawws.text("{nope"), "bad_json"), (rawws.text("[]"), "bad_message"), (rawws.text('"x"'), "bad_message"),
             (rawws.text('{"op":"dance"}'), "unknown_op"), (rawws.text('{"no_op":1}'), "unknown_op"),
             (rawws.frame(rawws.BINARY, b'{"op":"ping"}'), "bad_message"),
             (rawws.text('{"op":"subscribe","accounts":"all"}'), "bad_accounts"),
             (rawws.text('{"op":"subscribe","accounts":[-1]}'), "bad_accounts"),
             (rawws.text(",".join(map(str, range(1001))).join(['{"op":"subscribe","accounts":[', "]}"])),
              "bad_accounts"),  # 1,001 accounts, still under the 4 KiB message bound
             (rawws.text('{"op":"resume","since":-5}'), "bad_since"),
             (rawws.text('{"op":"resume","since":true}'), "bad_since"),
             (rawws.text(json.dumps({"op": "subscribe", "accounts": [2**63 - 1]})), "unknown_accounts")]
    for data, code in cases:
        sock.sendall(data)
        _expect_error(reader, code)
    sock.sendall(rawws.frame(rawws.PING, b"still there?"))
    while (got := reader.next(10)) is not None and got[0] != rawws.PONG:
        pass
    assert got == (rawws.PONG, b"still there?")
    sock.sendall(rawws.text('{"op":"ping","id":"fuzz"}'))
    assert reader.until_text(lambda m: m["type"] == "pong", 10)["id"] == "fuzz"
    sock.close()

    # Violations that end the connection, each with its close code (None: the TCP connection just ends).
    enders = [
        ("oversized text", [rawws.text("x" * 5000)], (1009,)),
        ("lying length", [rawws.frame(rawws.TEXT, b"{}", claimed_length=2**62)], (1009,)),
        ("oversized fragments", [rawws.frame(rawws.TEXT, b"a" * 3000, fin=False),
                                 rawws.frame(rawws.CONTINUATION, b"a" * 3000)], (1009,)),
        ("reserved bits", [rawws.frame(rawws.TEXT, b"{}", rsv=0b100)], (1002,)),
        ("orphan continuation", [rawws.frame(rawws.CONTINUATION, b"{}")], (1002,)),
        ("unknown opcode", [rawws.frame(0x3, b"{}")], (1002,)),
        ("non-UTF-8 text", [rawws.text(b"\xff\xfe\xfd")], (1007,)),
        ("client close", [rawws.frame(rawws.CLOSE, b"\x03\xe8bye")], (1000,)),
        ("garbage flood", [rawws.text(f"garbage {n}") for n in range(25)], (1008,)),
    ]
    for name, frames, codes in enders:
        sock, reader = _connect(stack)
        sock.sendall(b"".join(frames))
        closed, code = reader.close_code(10)
        sock.close()
        assert closed and code in codes, (name, closed, code)

    # Random bytes after a good handshake: whatever they parse as, the server closes or ignores, never dies.
    for _ in range(30):
        sock, reader = _connect(stack)
        sock.sendall(os.urandom(rng.randint(1, 3000)))
        reader.close_code(0.2)
        sock.close()

    # Random mutations of valid commands, from 4 connections at once.
    def mutate(n: int) -> bytes:
        base = rng.choice([{"op": "subscribe", "accounts": tracked}, {"op": "unsubscribe", "accounts": tracked[:1]},
                           {"op": "resume", "since": 1}, {"op": "ping", "id": n}])
        raw = bytearray(json.dumps(base).encode())
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return bytes(raw)

    def mutator(seed: int, failures: list[str]) -> None:
        for round_ in range(3):
            try:
                sock, reader = _connect(stack)  # the server must keep accepting
            except (rawws.Closed, OSError, AssertionError) as exc:
                failures.append(f"connect: {exc!r}")
                return
            try:
                for n in range(15):
                    payload = mutate(seed * 1000 + round_ * 100 + n)
                    sock.sendall(rawws.text(payload) if rng.random() < 0.8 else rawws.frame(rawws.BINARY, payload))
                reader.close_code(0.5)
            except OSError:
                pass  # the server closed on us (bad UTF-8, too many errors...): an allowed answer
            finally:
                sock.close()

    failures: list[str] = []
    threads = [threading.Thread(target=mutator, args=(n, failures)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures

    # Subscribe/unsubscribe churn: hundreds of changes, then the connection still follows the right accounts.
    # Each subscribe queues snapshots for us, so the churner reads as it goes (a client that does not is cut at the
    # queue bound like any slow client): a ping after every 25 commands, read up to its pong.
    sock, reader = _connect(stack)
    for n in range(300):
        subset = rng.sample(tracked, rng.randint(0, len(tracked)))
        sock.sendall(rawws.text(json.dumps({"op": rng.choice(["subscribe", "unsubscribe"]), "accounts": subset})))
        if n % 25 == 24:
            sock.sendall(rawws.text(json.dumps({"op": "ping", "id": n})))
            assert reader.until_text(lambda m: m["type"] == "pong" and m["id"] == n, 15) is not None
    sock.sendall(rawws.text(json.dumps({"op": "unsubscribe", "accounts": tracked})))
    sock.sendall(rawws.text(json.dumps({"op": "subscribe", "accounts": tracked[:1]})))
    sock.sendall(rawws.text('{"op":"ping","id":"churned"}'))
    assert reader.until_text(lambda m: m["type"] == "pong" and m["id"] == "churned", 15) is not None
    updates = []
    while len(updates) < 5:
        message = reader.until_text(lambda m: m["type"] == "update", 10)
        assert message is not None, "the churned connection stopped receiving"
        updates.append(message)
    assert {m["account_index"] for m in updates} == {tracked[0]}
    sock.close()

    # Everybody else carried on; nothing leaked: only the normal client is still registered.
    stack.wait_until(lambda: metric(stack, "lb_ws_clients") == 1, 20, "every fuzz connection unregistered",
                     interval=0.25)
    assert_bystanders_fine(stack, watcher, poller, started)
