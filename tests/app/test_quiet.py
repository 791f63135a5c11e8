"""A quiet market (simulator paused) through the real worker and web: confirmations keep the REST ETag, so a
poller at the advertised interval gets 304s that say how fresh its copy is, and a /ws client gets small
`confirm` frames, never the account again."""
from __future__ import annotations

import contextlib
import threading

import orjson
import pytest
import requests
from websockets.sync.client import connect

from app.ws.messages import CONFIRM_MAX_BYTES
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for

pytestmark = pytest.mark.slow
POLLS = 20


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    store_env = {"CACHE_DIR": str(tmp_path_factory.mktemp("quiet") / "store")}
    with contextlib.ExitStack() as stack:
        # Unlimited, as the worker is told (UPSTREAM_TIER): at the simulator's default tier (60 requests a minute)
        # its 429 put an error on the sections, data that moved, and a full update came where a confirm was due.
        sim = stack.enter_context(run_simulator(tick_ms=100, tier="unlimited"))
        sim.control.pause()  # no trades, no price moves: upstream only confirms what we hold
        env = worker_env_for(sim, store_env, accounts=2, public_only=(1,), UPSTREAM_TIER="unlimited",
                             POLL_INTERVAL="0.3", CACHE_TTL="5")
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        worker.wait_for(lambda: len(store.accounts()) == 2 and all(
            a["sections"]["summary"]["data"] for a in store.accounts()), timeout=20, message="both accounts")
        # Confirmations are being written: the seq moves while the version stays.
        first = store.account(store.tracked()[0])
        worker.wait_for(lambda: (a := store.account(first["account_index"]))["seq"] > first["seq"]
                        and a["version"] == first["version"] and a["version"] < a["seq"], timeout=20,
                        message="a confirmation keeping the version")
        web = stack.enter_context(run_web({**store_env, "RATE_LIMIT": "100000/minute"}))
        yield sim, worker, store, web


def test_a_poller_at_the_advertised_interval_gets_mostly_304s_with_the_freshness(quiet):
    sim, worker, store, web = quiet
    index = store.tracked()[0]
    url = f"{web.url}/api/accounts/{index}"
    first = requests.get(url, timeout=5)
    assert first.status_code == 200
    interval = float(first.headers["X-Poll-Interval"])
    tag, seqs, answers, pace = first.headers["ETag"], {first.json()["seq"]}, [], threading.Event()
    for _ in range(POLLS):
        pace.wait(interval)  # the poller's own pace (the advertised interval), not a wait for a condition
        reply = requests.get(url, headers={"If-None-Match": tag}, timeout=5)
        answers.append(reply.status_code)
        assert int(reply.headers["X-Data-Age-Ms"]) >= 0 and int(reply.headers["X-Data-As-Of"]) > 0
        if reply.status_code == 200:
            tag = reply.headers["ETag"]
            seqs.add(reply.json()["seq"])
        else:
            assert reply.content == b"" and reply.headers["ETag"] == tag
    assert set(answers) <= {200, 304}
    assert answers.count(304) >= 0.8 * POLLS, answers
    # Not because nothing was written: the worker confirmed the account meanwhile (its seq moved).
    assert store.account(index)["seq"] > min(seqs)
    assert store.account(index)["version"] < store.account(index)["seq"]


def test_a_ws_client_gets_small_confirm_frames_and_no_account_bodies(quiet):
    sim, worker, store, web = quiet
    ws_url = web.url.replace("http", "ws", 1) + "/ws"
    kinds: dict[str, list[int]] = {}
    seen: list = []
    with connect(ws_url, max_size=2**24) as client:
        hello = orjson.loads(client.recv(timeout=5))
        assert hello["protocol"] == 2 and hello["confirm"] == "small"
        held = {}
        while len(held) < 2:
            msg = orjson.loads(client.recv(timeout=5))
            if msg["type"] == "snapshot":
                held[msg["account_index"]] = msg["account"]
            seen.append((msg["type"], msg.get("account_index"), msg.get("seq"), msg.get("prev_seq")))
        while len(kinds.get("confirm", [])) < 6:
            raw = client.recv(timeout=10)
            msg = orjson.loads(raw)
            kinds.setdefault(msg["type"], []).append(len(raw))
            seen.append((msg["type"], msg.get("account_index"), msg.get("seq"), msg.get("prev_seq")))
            if msg["type"] == "confirm":
                assert held[msg["account_index"]]["seq"] == msg["prev_seq"], seen
                assert msg["version"] == held[msg["account_index"]]["version"]
                held[msg["account_index"]]["seq"] = msg["seq"]
    assert "update" not in kinds and "snapshot" not in kinds, seen
    assert max(kinds["confirm"]) <= CONFIRM_MAX_BYTES


def test_a_protocol_1_client_still_gets_full_updates_for_confirmations(quiet):
    sim, worker, store, web = quiet
    ws_url = web.url.replace("http", "ws", 1) + "/ws?v=1"
    with connect(ws_url, max_size=2**24) as client:
        hello = orjson.loads(client.recv(timeout=5))
        assert hello["protocol"] == 1 and hello["confirm"] == "full"
        updates = []
        while len(updates) < 2:
            msg = orjson.loads(client.recv(timeout=10))
            assert msg["type"] != "confirm"
            if msg["type"] == "update":
                updates.append(msg)
    assert all(u["account"]["version"] < u["seq"] for u in updates)  # confirmations, sent whole as before
