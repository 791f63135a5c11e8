"""The store writer (worker/sink.py) against our own redis-server: what is due goes out as consecutive changes in
one store call, and a failed call loses nothing."""
from __future__ import annotations

import time

import orjson
from redis.exceptions import RedisError

from core.settings import from_env
from core.store import Store
from tests.fixtures.redis import RedisServer
from worker.ingest.merge import AccountState
from worker.sink import Sink


def _sink(redis_url: str, tmp_path, errors: list) -> tuple[Sink, list[AccountState], Store]:
    store = Store.from_settings(from_env({"REDIS_URL": redis_url, "CACHE_DIR": str(tmp_path / "unused")}))
    states = [AccountState(index, public_only=True) for index in (11, 12, 13)]
    sink = Sink(store, states, confirm_every=60.0, on_error=lambda where, text: errors.append(where))
    return sink, states, store


def test_everything_due_is_one_batch_of_consecutive_changes(redis_url, tmp_path) -> None:
    errors: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    for state in states:
        state.apply_positions([{"market_id": 0, "position": "1.0"}], now=1_000)
    assert sink.write_once(confirmations=True)
    assert store.head() == 3 and [store.account(i)["seq"] for i in (11, 12, 13)] == [1, 2, 3]

    pubsub = store._redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("lb:changes")
    states[0].apply_positions([{"market_id": 0, "position": "2.0"}], now=2_000)
    states[2].apply_positions([{"market_id": 0, "position": "3.0"}], now=2_000)
    states[1].confirm(("positions",), now=2_000)  # as_of only: waits for the confirmation round
    assert sink.write_once(confirmations=False)
    assert store.head() == 5
    assert [(store.account(i)["seq"], store.account(i)["prev_seq"]) for i in (11, 13)] == [(4, 1), (5, 3)]
    assert store.account(12)["seq"] == 2
    seqs, deadline = [], time.monotonic() + 5
    while len(seqs) < 2 and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)  # (None for the subscription's own answer)
        if message is not None:
            seqs.append(orjson.loads(message["data"])["seq"])
    assert seqs == [4, 5]
    assert sink.write_once(confirmations=True)
    assert store.account(12)["seq"] == 6 and store.account(12)["as_of"] == 2_000
    assert errors == []


def test_a_failed_write_keeps_every_change_for_the_retry(redis_server: RedisServer, redis_url, tmp_path) -> None:
    errors: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    assert sink.write_once(confirmations=True)
    for state in states:
        state.apply_positions([{"market_id": 0, "position": str(state.index)}], now=2_000)
    redis_server.stop()
    assert not sink.write_once(confirmations=False)
    assert errors == ["store"] and sink.seq == 3 and all(state.changed for state in states)
    redis_server.start()  # empty again: the sink republishes what it tracks and writes every change
    # (The first attempt may meet a connection the restart broke; the pool then opens a new one.)
    assert any(sink.write_once(confirmations=False) for _ in range(3))
    assert store.tracked() == [11, 12, 13]
    assert [store.account(i)["sections"]["positions"]["data"][0]["position"] for i in (11, 12, 13)] == \
        ["11", "12", "13"]
    assert store.head() == 6


def test_a_write_without_the_lease_is_refused_and_kept_then_healed_under_a_new_one(redis_url, tmp_path) -> None:
    errors: list = []
    lost: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    sink._on_lost = lambda: lost.append(True)
    lease = store.lease("me", ttl_s=5)
    assert lease.acquire()
    store.fence = lease
    assert sink.write_once(confirmations=True)
    assert store.account(11)["epoch"] == lease.epoch
    store._redis.flushall()  # the lease goes with everything else
    states[0].apply_positions([{"market_id": 0, "position": "9.0"}], now=3_000)
    assert not sink.write_once(confirmations=False)
    assert lost == [True] and errors == ["store"] and states[0].changed  # refused, reported, nothing lost
    assert store.head() == 0 and store.tracked() == []  # and nothing of it landed
    assert lease.acquire(floor=1) and lease.epoch == 2  # what the lease keeper does
    sink.heal("the writer lease")
    assert sink.write_once(confirmations=False)
    # Everything rewritten under the new epoch, seq continuing above the last one written.
    assert store.tracked() == [11, 12, 13] and store.head() == 6
    assert [store.account(i)["epoch"] for i in (11, 12, 13)] == [2, 2, 2]
    assert store.account(11)["sections"]["positions"]["data"][0]["position"] == "9.0"


def test_heal_rewrites_what_the_store_lost(redis_url, tmp_path) -> None:
    errors: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    assert sink.write_once(confirmations=True)
    assert store.lost([11, 12, 13], sink.seq) is None
    store._redis.delete("lb:accounts", "lb:account:12")
    reason = store.lost([11, 12, 13], sink.seq)
    assert reason == "the tracked list"
    sink.heal(reason)
    assert sink.write_once(confirmations=False)
    assert store.lost([11, 12, 13], sink.seq) is None and store.head() == 6 and errors == []


def test_the_content_version_moves_with_data_only_and_survives_a_new_writer(redis_url, tmp_path) -> None:
    """Confirmations and rewrites keep `version`; a data change sets it to its seq; a new sink (a restart or a
    takeover: states read back from the store) resumes it."""
    errors: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    states[0].apply_positions([{"market_id": 0, "position": "1.0"}], now=1_000)
    assert sink.write_once(confirmations=True)
    first = store.account(11)
    assert first["version"] == first["seq"]
    states[0].confirm(("positions",), now=2_000)
    assert sink.write_once(confirmations=True)
    confirmed = store.account(11)
    assert confirmed["seq"] > first["seq"] and confirmed["as_of"] == 2_000
    assert confirmed["version"] == first["version"]
    states[0].apply_positions([{"market_id": 0, "position": "1.0"}], now=3_000)  # same rows, REST->WS: no data move
    assert sink.write_once(confirmations=True) and store.account(11)["version"] == first["version"]
    # A new writer starts from what the store holds; its first write is a rewrite of everything: same versions.
    resumed = [AccountState(i, public_only=True, previous=store.account(i)) for i in (11, 12, 13)]
    again = Sink(store, resumed, confirm_every=60.0, on_error=lambda where, text: errors.append(where))
    assert again.write_once(confirmations=True)
    rewritten = store.account(11)
    assert rewritten["seq"] > confirmed["seq"] and rewritten["version"] == first["version"]
    resumed[0].apply_positions([{"market_id": 0, "position": "2.0"}], now=4_000)
    assert again.write_once(confirmations=False)
    changed = store.account(11)
    assert changed["version"] == changed["seq"] > rewritten["seq"]
    resumed[0].fail("positions", "upstream said no", "rest")  # an error flag is data: readers must learn it
    assert again.write_once(confirmations=False) and store.account(11)["version"] == store.account(11)["seq"]
    assert errors == []


def test_a_relabelled_account_gets_a_new_version_when_resumed(redis_url, tmp_path) -> None:
    errors: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    states[0].apply_positions([{"market_id": 0, "position": "1.0"}], now=1_000)
    assert sink.write_once(confirmations=True)
    version = store.account(11)["version"]
    same = AccountState(11, public_only=True, previous=store.account(11))
    renamed = AccountState(12, public_only=True, previous=store.account(12), name="hedge", group=2)
    again = Sink(store, [same, renamed], confirm_every=60.0, on_error=lambda where, text: errors.append(where))
    assert again.write_once(confirmations=True)
    assert store.account(11)["version"] == version
    assert store.account(12)["version"] == store.account(12)["seq"] and store.account(12)["name"] == "hedge"
    assert errors == []


def test_history_and_alerts_get_what_was_written_after_the_write_and_even_when_it_failed(
        redis_server: RedisServer, redis_url, tmp_path) -> None:
    """Nothing but the store write stands between a frame and the web: history and alerts get their copies after
    it (decoded from the bytes written), detached from the live snapshot, and also when the write failed."""
    errors: list = []
    sink, states, store = _sink(redis_url, tmp_path, errors)
    handed: list[tuple[str, list, int | None]] = []

    def head() -> int | None:
        try:
            return store.head()
        except RedisError:
            return None

    sink.on_written = lambda batch: handed.append(("history", batch, head()))
    sink.on_alerts = lambda batch: handed.append(("alerts", batch, head()))
    states[0].apply_positions([{"market_id": 0, "position": "1.5"}], now=1_000)
    assert sink.write_once(confirmations=True)
    assert [(who, [s["seq"] for s in batch], head) for who, batch, head in handed] == \
        [("history", [1, 2, 3], 3), ("alerts", [1, 2, 3], 3)]  # the store already had them when handed on
    written = handed[0][1][0]
    assert written == store.account(11) and written["version"] == 1 and written["prev_seq"] is None
    states[0].apply_positions([{"market_id": 0, "position": "2.5"}], now=2_000)
    assert written["sections"]["positions"]["data"][0]["position"] == "1.5"  # a copy, not the live snapshot

    handed.clear()
    redis_server.stop()
    assert not sink.write_once(confirmations=False)
    assert [(who, [s["seq"] for s in batch], head) for who, batch, head in handed] == \
        [("history", [4], None), ("alerts", [4], None)]
    assert handed[0][1][0]["sections"]["positions"]["data"][0]["position"] == "2.5"
    assert errors == ["store"]
