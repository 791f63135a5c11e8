"""The /stream client kind in the hub's fan-out, without sockets: frames decoded once, chained, and chosen per client.

The hub offers each change as its own pre-encoded /ws frame; these tests feed real hub frames (built by the web's
`messages` and `transport`) to real LighterClients and read what lands in their queues.
"""
from __future__ import annotations

import copy

import orjson

from app.compat.stream import Encoder, LighterClient, hub_message
from app.metrics import Metrics
from app.ws import messages, transport
from app.ws.clients import Outgoing
from core.store import Change
from tests.app.compat.test_shapes import make_snapshot
from tests.doubles import Recorder


def hub_frame(snapshot: dict) -> bytes:
    return transport.frame_text(messages.update(Change(snapshot["seq"], snapshot), ttl_s=5.0))


def lighter_client(encoder: Encoder | None = None) -> LighterClient:
    return LighterClient(Recorder(), 64, Metrics(), encoder or Encoder())


def queued(client: LighterClient) -> list[dict]:
    out = [orjson.loads(hub_message(f)) for f in client.conn.frames]
    client.conn.frames.clear()
    return out


def step(snapshot: dict, seq: int, price: str | None = None) -> dict:
    """The next snapshot of the account: `seq` and (optionally) the first order repriced."""
    nxt = copy.deepcopy(snapshot)
    nxt["seq"] = seq
    if price is not None:
        nxt["sections"]["orders"]["data"][0]["price"] = price
    return nxt


def test_hub_message_reads_every_frame_length() -> None:
    for size in (10, 200, 70_000):
        text = orjson.dumps({"type": "update", "pad": "x" * size}).decode()
        assert hub_message(transport.frame_text(text)) == text.encode()


def test_updates_are_deltas_shared_by_clients_and_gaps_get_full_frames() -> None:
    encoder, metrics = Encoder(), Metrics()
    a = LighterClient(Recorder(), 64, metrics, encoder)
    b = LighterClient(Recorder(), 64, metrics, encoder)
    s1 = make_snapshot()
    s1["seq"] = 1
    for client in (a, b):
        client.watch("account_all_orders", 123456)
        client.subscribe("account_all_orders", 123456, s1)
    assert [f["type"] for f in queued(a)] == ["subscribed/account_all_orders"]
    queued(b)

    s2 = step(s1, 2, price="2400.00")
    frame2 = hub_frame(s2)
    a.offer(Outgoing(123456, 2, frame2))
    b.offer(Outgoing(123456, 2, frame2))
    [fa], [fb] = queued(a), queued(b)
    assert fa == fb and fa["type"] == "update/account_all_orders"
    assert fa["orders"]["0"][0]["price"] == "2400.00"
    assert encoder.change(123456, 2, frame2).frame("account_all_orders", "update") is \
        encoder.change(123456, 2, frame2).frame("account_all_orders", "update")  # encoded once

    a.offer(Outgoing(123456, 2, frame2))  # a duplicate offer (resync race) is skipped
    assert queued(a) == []
    b.unsubscribe("account_all_orders", 123456)
    queued(b)
    s3, s4 = step(s2, 3, price="2401.00"), step(s2, 4, price="2402.00")
    encoder.change(123456, 3, hub_frame(s3))
    a.channels[("account_all_orders", 123456)] = 2  # pretend `a` missed seq 3: a delta from 3 cannot apply to it
    a.offer(Outgoing(123456, 4, hub_frame(s4)))
    [full] = queued(a)
    assert full["type"] == "subscribed/account_all_orders" and full["orders"]["0"][0]["price"] == "2402.00"


def test_hub_heartbeats_become_pings_and_resyncs_full_frames() -> None:
    client = lighter_client()
    snapshot = make_snapshot()
    client.watch("user_stats", 123456)
    client.send(transport.frame_text(messages.heartbeat(5)))
    client.send(transport.frame_text(messages.status({"server_time": 1})))  # /ws-only messages are dropped
    client.send(transport.frame_text(messages.account_message("snapshot", snapshot, 5.0, resync=True)))
    ping, stats = queued(client)
    assert ping == {"type": "ping"}
    assert stats["type"] == "subscribed/user_stats" and stats["stats"]["portfolio_value"] == "1001.000000"


def test_channels_without_data_wait_for_their_first_full_frame() -> None:
    client = lighter_client()
    empty = make_snapshot(orders=False)
    client.watch("account_all_orders", 123456)
    client.subscribe("account_all_orders", 123456, empty)
    assert queued(client) == []  # orders never fetched: nothing to say yet
    filled = make_snapshot()
    filled["seq"] = empty["seq"] + 1
    client.offer(Outgoing(123456, filled["seq"], hub_frame(filled)))
    assert [f["type"] for f in queued(client)] == ["subscribed/account_all_orders"]


def test_store_reset_reuses_no_cached_change_and_rechains_from_the_resync() -> None:
    encoder = Encoder()
    client = lighter_client(encoder)
    s1 = make_snapshot()
    s1["seq"] = 9
    client.watch("account_all_orders", 123456)
    client.subscribe("account_all_orders", 123456, s1)
    client.offer(Outgoing(123456, 10, hub_frame(step(s1, 10, price="2400.00"))))
    queued(client)
    # The store is wiped: the hub resyncs from seq 1, then seq 2 comes again with other data than before.
    fresh = step(s1, 1, price="100.00")
    client.send(transport.frame_text(messages.account_message("snapshot", fresh, 5.0, resync=True)))
    [resync] = queued(client)
    assert resync["type"] == "subscribed/account_all_orders" and resync["orders"]["0"][0]["price"] == "100.00"
    client.offer(Outgoing(123456, 2, hub_frame(step(fresh, 2, price="101.00"))))
    [update] = queued(client)
    assert update["type"] == "update/account_all_orders" and update["orders"]["0"][0]["price"] == "101.00"
