"""/ws against the real server: protocol, ordering, resume, hostile clients, slow clients, two servers."""
from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests
import websocket
from websockets.exceptions import ConnectionClosed

from core.store import FEED_SIZE
from tests.app.compat.conftest import wait_for
from tests.app.conftest import Feeder, messages, open_ws, until
from tests.fixtures.web import run_web


def _updates(ws, count: int, deadline_s: float = 20.0) -> list[dict]:
    got = []
    for message in messages(ws, deadline_s):
        if message["type"] in ("update", "snapshot"):
            got.append(message)
            if len(got) == count:
                return got
    return got


def assert_in_order(received: list[dict], start: dict[int, int]) -> None:
    """Every update follows the previous one for its account (prev_seq chain) and seqs only grow."""
    last = dict(start)
    seqs = [m["seq"] for m in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    for message in received:
        assert message["prev_seq"] == last.get(message["account_index"]), message["seq"]
        last[message["account_index"]] = message["seq"]


def test_hello_snapshots_updates_and_commands(file_env):
    feeder = Feeder(file_env)
    feeder.track([1, 2])
    feeder.status()
    with run_web(file_env) as web, open_ws(web.ws_url) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello" and hello["protocol"] == 2 and hello["accounts"] == [1, 2]
        assert hello["heartbeat_s"] < 55
        snaps = _updates(ws, 2)
        assert [(s["type"], s["account_index"], s["resync"]) for s in snaps] == [("snapshot", 1, False),
                                                                                ("snapshot", 2, False)]
        assert {"age_ms", "stale", "seq", "as_of"} <= snaps[0]["account"].keys()
        start = {s["account_index"]: s["seq"] for s in snaps}
        sent = [feeder.put(1 + i % 2) for i in range(40)]
        received = _updates(ws, 40)
        assert [m["seq"] for m in received] == sent and all(m["type"] == "update" for m in received)
        assert_in_order(received, start)
        ws.send(json.dumps({"op": "unsubscribe", "accounts": [2]}))
        assert until(ws, lambda m: m["type"] == "subscribed")["accounts"] == [1]
        feeder.put(2)
        mine = feeder.put(1)
        assert until(ws, lambda m: m["type"] == "update")["seq"] == mine
        ws.send(json.dumps({"op": "subscribe", "accounts": [2, 99]}))
        assert until(ws, lambda m: m["type"] == "subscribed")["accounts"] == [1, 2]
        resub = until(ws, lambda m: m["type"] == "snapshot")
        assert resub["account_index"] == 2 and resub["seq"] == feeder.prev[2]
        assert until(ws, lambda m: m["type"] == "error")["code"] == "unknown_accounts"
        for garbage, code in [("{nope", "bad_json"), ("[1]", "bad_message"), ('{"op":"dance"}', "unknown_op"),
                              (b"\x00\x01", "bad_message"), ('{"op":"subscribe","accounts":"all"}', "bad_accounts")]:
            ws.send(garbage)
            assert until(ws, lambda m: m["type"] == "error")["code"] == code
        ws.send(json.dumps({"op": "ping", "id": 7}))
        assert until(ws, lambda m: m["type"] == "pong")["id"] == 7
        # A change of state (here the upstream mode) is pushed at once, not at the next 5 s refresh.
        feeder.status(mode="rest")
        pushed = until(ws, lambda m: m["type"] == "status" and m["status"]["mode"] == "rest", deadline_s=3)
        assert pushed["status"]["worker"]["up"]
        ws.send("x" * 5000)
        with pytest.raises(ConnectionClosed):
            _updates(ws, 1, deadline_s=5)
        assert ws.protocol.close_rcvd.code == 1009
        # The server survived all of that.
        assert requests.get(web.url + "/health", timeout=5).status_code == 200


def test_resume_replays_or_resyncs(file_env):
    feeder = Feeder(file_env)
    feeder.track([1, 2])
    with run_web(file_env) as web:
        since = feeder.seq
        missed = [feeder.put(1), feeder.put(2), feeder.put(1)]
        with open_ws(f"{web.ws_url}?since={since}") as ws:
            replay = _updates(ws, 3)
            assert [(m["type"], m["seq"]) for m in replay] == [("update", s) for s in missed]
            live = feeder.put(2)
            assert _updates(ws, 1)[0]["seq"] == live
        with open_ws(f"{web.ws_url}?since={feeder.seq + 5}") as ws:  # from the future: the store was reset
            snaps = _updates(ws, 2)
            assert all(m["type"] == "snapshot" and m["resync"] for m in snaps)
        feeder.seq += FEED_SIZE  # the feed ring no longer reaches back to seq 1
        feeder.put(2)
        with open_ws(f"{web.ws_url}?accounts=2") as ws:
            ws.send(json.dumps({"op": "resume", "since": 1}))
            got = _updates(ws, 2)
            assert [(m["account_index"], m.get("resync")) for m in got] == [(2, False), (2, True)]
        with open_ws(f"{web.ws_url}?since=abc") as ws:
            assert until(ws, lambda m: m["type"] == "error")["code"] == "bad_query"
        with open_ws(f"{web.ws_url}?updates=diff") as ws:
            assert until(ws, lambda m: m["type"] == "error")["code"] == "bad_query"
        # A query of many fields and broken escapes is read as Flask reads one: the first value of each name.
        with open_ws(f"{web.ws_url}?{'&'.join(f'x{i}=%zz' for i in range(300))}&v=1&v=3") as ws:
            assert until(ws, lambda m: m["type"] == "hello")["protocol"] == 1
        for query in ("v=3", "v=x", "confirm=patch"):
            with open_ws(f"{web.ws_url}?{query}") as ws:
                error = until(ws, lambda m: m["type"] == "error")
                assert error["code"] == "bad_query" and query.split("=")[0] in error["message"]
        for query, protocol, confirm in (("v=1", 1, "full"), ("v=2", 2, "small"), ("confirm=full", 2, "full"),
                                         ("v=1&confirm=small", 1, "small")):
            with open_ws(f"{web.ws_url}?{query}") as ws:
                hello = until(ws, lambda m: m["type"] == "hello")
                assert (hello["protocol"], hello["confirm"]) == (protocol, confirm), query


def test_patch_updates_only_follow_what_this_connection_was_sent(file_env):
    """A patch client resuming: the replay is full updates (the server never sent it those accounts on this
    connection), and only changes after what it was sent here come as patches."""
    feeder = Feeder(file_env)
    feeder.track([1, 2])
    with run_web(file_env) as web:
        since = feeder.seq
        missed = feeder.put(1)
        with open_ws(f"{web.ws_url}?since={since}&updates=patch") as ws:
            [replayed] = _updates(ws, 1)
            assert replayed["seq"] == missed and "account" in replayed and "patch" not in replayed
            live = feeder.put(1)
            [patched] = _updates(ws, 1)
            assert (patched["seq"], patched["prev_seq"]) == (live, missed) and "account" not in patched
            assert {"op": "replace", "path": "/seq", "value": live} in patched["patch"]
            other = feeder.put(2)  # account 2 was not sent on this connection: in full
            [first_of_2] = _updates(ws, 1)
            assert first_of_2["seq"] == other and "account" in first_of_2 and "patch" not in first_of_2


def test_token_on_ws(file_env):
    env = {**file_env, "API_TOKEN": "tok-123456"}
    Feeder(env).track([1])
    with run_web(env) as web:
        with open_ws(web.ws_url) as ws:
            assert until(ws, lambda m: m["type"] == "error")["code"] == "unauthorized"
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=5)
            assert ws.protocol.close_rcvd.code == 4001
        with open_ws(f"{web.ws_url}?token=tok-123456") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
        with open_ws(web.ws_url, additional_headers={"Authorization": "Bearer tok-123456"}) as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"


def test_a_full_server_refuses_new_websockets_until_one_leaves(file_env):
    env = {**file_env, "WS_MAX_CLIENTS": "2"}
    Feeder(env).track([1])
    with run_web(env) as web, open_ws(web.ws_url) as first, \
            open_ws(web.url.replace("http", "ws", 1) + "/stream") as lighter:
        assert json.loads(first.recv(timeout=10))["type"] == "hello"
        assert json.loads(lighter.recv(timeout=10))["type"] == "connected"
        for path in ("/ws", "/stream"):  # both kinds count against one bound
            with open_ws(web.url.replace("http", "ws", 1) + path) as refused:
                if path == "/ws":
                    assert until(refused, lambda m: m["type"] == "error")["code"] == "server_full"
                with pytest.raises(ConnectionClosed):
                    while True:
                        refused.recv(timeout=5)
                assert refused.protocol.close_rcvd.code == 1013
        assert requests.get(web.url + "/health", timeout=5).status_code == 200  # HTTP is unaffected
        first.close()
        clients = lambda: sum(_metric(web, f'lb_ws_clients{{route="{r}"}}') for r in ("/ws", "/stream"))  # noqa: E731
        wait_for(lambda: clients() == 1, message="the closed client unregistered")
        with open_ws(web.ws_url) as again:
            assert json.loads(again.recv(timeout=10))["type"] == "hello"


def _metric(web, name: str) -> float:
    text = requests.get(web.url + "/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_slow_client_is_cut_off_while_others_keep_up(redis_env):
    feeder = Feeder(redis_env)
    feeder.track([1, 2])
    with run_web(redis_env) as web, open_ws(web.ws_url) as fast:
        # The slow client: a tiny receive buffer, and it never reads until we say so.
        slow = websocket.create_connection(web.ws_url, timeout=10, skip_utf8_validation=True,
                                           sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),))
        start = {m["account_index"]: m["seq"] for m in _updates(fast, 2)}
        sent, received_all = [], []
        deadline = time.monotonic() + 60
        while _metric(web, 'lb_ws_clients_dropped_total{reason="slow",route="/ws"}') < 1:
            assert time.monotonic() < deadline, "the slow client was never cut off"
            batch = [feeder.put(1 + i % 2, padding=30_000) for i in range(50)]
            sent += batch
            received_all += _updates(fast, len(batch))
        sent += [feeder.put(1) for _ in range(20)]  # the healthy client is unaffected afterwards too
        received_all += _updates(fast, len(sent) - len(received_all))
        assert [m["seq"] for m in received_all] == sent
        assert_in_order(received_all, start)
        # The slow client now reads: snapshots, an in-order run of updates, then a close frame with our code.
        start, updates, close = {}, [], None
        while close is None:
            opcode, data = slow.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                close = (int.from_bytes(data[:2], "big"), data[2:].decode())
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                message = json.loads(data)
                if message["type"] == "snapshot":  # one per account, each at its account's current seq
                    start[message["account_index"]] = message["seq"]
                elif message["type"] == "update":
                    updates.append(message)
        assert close[0] == 4008 and "too slow" in close[1]
        assert set(start) == {1, 2} and 0 < len(updates) < len(sent)
        assert_in_order(updates, start)
        slow.close()
        assert _metric(web, 'lb_ws_frames_dropped_total{route="/ws"}') > 0


def test_two_servers_share_one_redis(redis_env):
    feeder = Feeder(redis_env)
    feeder.track([1, 2, 3])
    with run_web(redis_env) as a, run_web(redis_env) as b, open_ws(a.ws_url) as wa, open_ws(b.ws_url) as wb:
        starts = [{m["account_index"]: m["seq"] for m in _updates(ws, 3)} for ws in (wa, wb)]
        sent = [feeder.put(1 + i % 3) for i in range(300)]
        for ws, start in zip((wa, wb), starts, strict=False):
            received = _updates(ws, len(sent))
            assert [m["seq"] for m in received] == sent
            assert_in_order(received, start)


def test_store_outage_is_503_then_clients_resync(tmp_path):
    from tests.fixtures.redis import RedisServer

    server = RedisServer()  # our own, so we may stop it
    server.start()
    env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": server.url}
    try:
        Feeder(env).track([1])
        with run_web(env) as web, open_ws(web.ws_url) as ws:
            assert _updates(ws, 1)[0]["type"] == "snapshot"
            server.stop()
            down = requests.get(f"{web.url}/api/accounts/1", timeout=10)
            assert down.status_code == 503 and down.json()["status"] == 503
            health = requests.get(f"{web.url}/health", timeout=10)
            assert health.status_code == 200 and health.json()["store_reachable"] is False
            until(ws, lambda m: m["type"] == "status" and m["status"]["store"]["reachable"] is False)
            server.start()  # empty again: the worker would rewrite from seq 1, which is a store reset
            feeder = Feeder(env)
            feeder.track([1])
            # A resync snapshot, or (if the hub recovered before the account was rewritten) its first update.
            again = until(ws, lambda m: m["type"] in ("snapshot", "update"), deadline_s=20)
            assert again["seq"] == feeder.seq and again.get("resync", True) is True
            live = feeder.put(1)
            assert until(ws, lambda m: m["type"] == "update")["seq"] == live
            assert requests.get(f"{web.url}/api/accounts/1", timeout=5).status_code == 200
    finally:
        server.stop()


def test_sigterm_closes_websockets_politely_and_fast(file_env):
    Feeder(file_env).track([1])
    with run_web(file_env) as web, open_ws(web.ws_url) as ws:
        assert _updates(ws, 1)[0]["type"] == "snapshot"
        started = time.monotonic()
        web.proc.terminate()
        with pytest.raises(ConnectionClosed):
            _updates(ws, 1, deadline_s=10)
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1001
        web.proc.wait(timeout=10)
        assert time.monotonic() - started < 4.5  # honcho sends SIGKILL at 5 s
