"""Drills 4 and 5: hostile /ws clients against one live stack, while a normal /ws client and a REST poller watch.

4. A hundred clients complete the handshake and never read again: the server must cut each one off at its queue
   bound, stay responsive (/health stays fast) and keep the normal client's feed complete and in order.
5. /ws fuzzing: bytes that are not HTTP, random bytes after the handshake, malformed JSON, unknown ops, binary,
   non-UTF-8, oversized and lying frames, protocol violations, garbage floods and subscribe/unsubscribe churn.
   The server answers with error frames or closes (with the documented codes), never crashes, and nobody else
   notices. (REST is fuzzed with schemathesis in tests/app/test_integration.py, so not again here.)
"""
from __future__ import annotations

import json
import os
import random
import re
import socket
import statistics
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.app.conftest import Feeder, open_ws
from tests.drills import rawws
from tests.drills.clients import Poller, RestPoller, WsWatcher, now_ms
from tests.drills.helpers import Stack, live_stack
from tests.fixtures.web import run_web
from tests.waiting import wait_for

pytestmark = pytest.mark.drill
NEVER_READERS = 100
SEED = int(os.environ.get("DRILL_SEED", "6"))


def metric(stack: Stack, name: str) -> float:
    """The sample `name` (with its labels), or, for a bare name, the sum over all its label sets (every route)."""
    text = stack.get("/metrics").text
    labels = "" if "{" in name else r"(?:\{[^}]*\})?"
    found = re.findall(rf"^{re.escape(name)}{labels} ([0-9.e+-]+)$", text, re.MULTILINE)
    return sum(float(value) for value in found)


SLOW_DROPS = 'lb_ws_clients_dropped_total{reason="slow",route="/ws"}'


class HealthProbe(Poller):
    """Times GET /health every 100 ms in a thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures: list[str] = []
        super().__init__(every_s=0.1, name="health-probe")

    def poll(self) -> None:
        started = time.monotonic()
        try:
            ok = self.session.get(self.url + "/health", timeout=5).status_code == 200
        except requests.RequestException as exc:
            ok = False
            self.failures.append(repr(exc))
        self.latencies.append(time.monotonic() - started)
        if not ok:
            self.failures.append("not 200")


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
    median, p95 = statistics.median(latencies), latencies[int(len(latencies) * 0.95)]
    print(f"drill: {NEVER_READERS} never-readers cut within {cut_after:.1f}s; /health median {median * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms over {len(latencies)} probes")
    assert not probe.failures, probe.failures[:5]
    assert median < 0.05 and p95 < 0.25 and latencies[-1] < 2.0, (p95, latencies[-1])
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


def _expect_close(reader: rawws.Reader, codes: tuple[int | None, ...]) -> None:
    closed, code = reader.close_code(10)
    assert closed and code in codes, (closed, code)


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


# -- issue 13: bytes, bursts and half-open connections, each measured against its figure ----------------------
TOKEN = "tok-hostile-0123456789"
BURST_ENV = json.loads(os.environ.get("DRILL_BURST_ENV", "{}"))  # to try other admission settings by hand
MB = 1024 * 1024


def web_worker_pid(web) -> int:  # noqa: ANN001
    """The gunicorn worker (the master's one child): the process whose memory the clients cost."""
    children = Path(f"/proc/{web.proc.pid}/task/{web.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class RssSampler:
    """The peak RSS of `pid`, sampled every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def p95(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def _ws_metric(web, name: str) -> float:  # noqa: ANN001
    """As `metric`: a bare name is summed over its label sets (every route)."""
    text = requests.get(web.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
    labels = "" if "{" in name else r"(?:\{[^}]*\})?"
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}{labels} ([0-9.e+-]+)$", text, re.MULTILINE))


@pytest.mark.slow
def test_50_clients_that_never_read_cost_bytes_not_megabytes(tmp_path):
    """Row 3: 50 /ws clients with the token that never read while 20 KB account updates flow. Each may owe
    WEB_WS_BACKLOG_BYTES (1 MiB) of frames shared with everyone: the web grows by at most 50 MB, the reading
    client gets every update in order, the 50 are cut with 4008, and the memory is given back."""
    env = {"CACHE_DIR": str(tmp_path / "store"), "API_TOKEN": TOKEN}
    feeder = Feeder(env)
    feeder.track([1, 2])
    with run_web(env) as web, open_ws(f"{web.ws_url}?token={TOKEN}") as reader:
        worker = web_worker_pid(web)
        received: list[int] = []
        stop = threading.Event()

        synced = threading.Event()

        def read() -> None:
            while not stop.is_set():
                try:
                    message = json.loads(reader.recv(timeout=0.5))
                except TimeoutError:
                    continue
                if message["type"] == "status":  # the initial sync is over: what follows are updates
                    synced.set()
                if message["type"] == "update":
                    received.append(message["seq"])

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        # A put racing the initial sync may arrive inside the snapshot instead of as an update: sync first.
        wait_for(synced.is_set, 20, "the reader's initial sync")
        for _ in range(40):  # warm up: the frame sizes and allocator pools of the steady state
            feeder.put(1, padding=20_000)
        wait_for(lambda: len(received) >= 40, 20, "the reader warmed up")
        baseline = rss(worker)
        never = [rawws.handshake(web.port, f"/ws?token={TOKEN}", rcvbuf=4096) for _ in range(50)]
        sampler = RssSampler(worker)
        sent = []
        try:
            deadline = time.monotonic() + 90
            while _ws_metric(web, SLOW_DROPS) < 50:
                assert time.monotonic() < deadline, "the never-readers were not all cut within 90 s"
                sent += [feeder.put(1 + n % 2, padding=20_000) for n in range(20)]
            peak = sampler.stop()
            wait_for(lambda: _ws_metric(web, "lb_ws_clients") == 1, 20, "the cut clients unregistered")
            wait_for(lambda: received and received[-1] >= sent[-1], 20, "the reader caught up")
        finally:
            sampler.stop()
            stop.set()
            thread.join(timeout=5)
            for sock in never:
                sock.close()
        after = rss(worker)
        print(f"drill: 50 never-readers, {len(sent)} updates of ~20 KB: web RSS {baseline / MB:.0f} MB -> peak "
              f"{peak / MB:.0f} MB (+{(peak - baseline) / MB:.1f} MB) -> {after / MB:.0f} MB after they were cut")
        assert peak - baseline <= 50 * MB
        assert after - baseline <= 10 * MB, "memory held after the slow clients were dropped"
        mine = [s for s in received if s > received[0]]
        assert mine == sorted(set(mine)) and set(sent) <= set(received), "the reading client missed updates"


async def _burst(port: int, count: int, path: str) -> list[list[tuple[str, int | None, int]]]:
    import asyncio

    try:
        return await asyncio.gather(*(rawws.until_synced(port, path, 60) for _ in range(count)))
    finally:
        for writer in rawws.OPEN_WRITERS:
            writer.close()
        rawws.OPEN_WRITERS.clear()


@pytest.mark.slow
def test_a_burst_of_2000_handshakes_degrades_gracefully(tmp_path):
    """Row 4: 2,000 /ws handshakes with the token, as fast as one process opens them, each retrying after the
    server's hint when refused. None is closed with 1011; a refusal is 1013 (admission pacing) or 429 (the
    address's connection cap), each with a retry hint; every client ends synced (hello, its snapshots, status);
    the web stays under 600 MB and /health p95 under 500 ms."""
    import asyncio

    env = {"CACHE_DIR": str(tmp_path / "store"), "API_TOKEN": TOKEN, **BURST_ENV}
    feeder = Feeder(env)
    feeder.track([1, 2])
    for index in (1, 2):
        feeder.put(index, padding=20_000)
    with run_web(env) as web:
        sampler = RssSampler(web_worker_pid(web))
        probe = HealthProbe(web.url)
        try:
            started = time.monotonic()
            clients = asyncio.run(_burst(web.port, 2000, f"/ws?token={TOKEN}"))
            took = time.monotonic() - started
        finally:
            probe.close()
            peak = sampler.stop()
    counts: dict = {}
    for attempts in clients:
        for outcome, code, _ in attempts:
            counts[(outcome, code)] = counts.get((outcome, code), 0) + 1
    final = [attempts[0] for attempts in clients]
    print(f"drill: 2000 clients synced in {took:.1f}s ({2000 / took:.0f}/s) with retries: {counts}; web peak RSS "
          f"{peak / MB:.0f} MB; /health p95 {p95(probe.latencies) * 1000:.0f} ms over {len(probe.latencies)} probes")
    assert ("closed", 1011) not in counts
    assert set(counts) <= {("synced", None), ("closed", 1013), ("refused", 429)}, counts
    assert all(outcome == "synced" and snapshots == 2 for outcome, _, snapshots in final)
    assert peak <= 600 * MB
    assert not probe.failures and p95(probe.latencies) <= 0.5


@pytest.mark.slow
def test_2000_partial_header_connections_leave_health_fast_and_are_all_closed(tmp_path):
    """Row 5: 2,000 connections from one address that send half a request and stop. The address's first
    WEB_CONNS_PER_ADDRESS are cut at the header deadline (408), the rest refused at once (429); /health (from
    another address) keeps p95 under 1 s; every one is closed within 60 s."""
    import selectors

    env = {"CACHE_DIR": str(tmp_path / "store")}
    Feeder(env).track([1])
    with run_web(env) as web:
        probe = HealthProbe(web.url)
        selector = selectors.DefaultSelector()
        started = time.monotonic()
        closed_after: list[float] = []
        statuses: dict[bytes, int] = {}
        try:
            for _ in range(2000):
                sock = socket.create_connection(("127.0.0.1", web.port), timeout=10, source_address=("127.0.0.2", 0))
                sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Half: ")
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, bytearray())
            opened = time.monotonic() - started
            while selector.get_map() and time.monotonic() - started < 70:
                for key, _ in selector.select(timeout=1):
                    sock, answer = key.fileobj, key.data
                    try:
                        chunk = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        chunk = b""
                    if chunk:
                        answer += chunk
                        continue
                    closed_after.append(time.monotonic() - started)
                    status = bytes(answer[9:12]) or b"eof"
                    statuses[status] = statuses.get(status, 0) + 1
                    selector.unregister(sock)
                    sock.close()
        finally:
            probe.close()
            for key in list(selector.get_map().values()):
                key.fileobj.close()
        assert stack_alive(web)
    print(f"drill: 2000 partial-header connections opened in {opened:.1f}s: {statuses}; all closed after "
          f"{max(closed_after):.1f}s; /health p95 {p95(probe.latencies) * 1000:.0f} ms, max "
          f"{max(probe.latencies) * 1000:.0f} ms over {len(probe.latencies)} probes")
    assert len(closed_after) == 2000 and max(closed_after) <= 60
    assert set(statuses) <= {b"408", b"429"} and statuses.get(b"408", 0) <= 256
    assert not probe.failures and p95(probe.latencies) <= 1.0


def stack_alive(web) -> bool:  # noqa: ANN001
    return web.proc.poll() is None
