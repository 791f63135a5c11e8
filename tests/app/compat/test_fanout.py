"""The /stream client kind in the hub's fan-out, without sockets: frames built once per change, chained, and chosen
per client.

The hub offers each change as an `Outgoing` item (its /ws frame plus the typed snapshot); these tests hand real
items (built by the web's `messages` and `transport`) to real LighterClients and read what lands in their writes.
"""
from __future__ import annotations

import copy

from app.compat.stream import Encoder, LighterClient
from app.metrics import Metrics
from app.ws import messages, transport
from app.ws.clients import Outgoing, Riders
from core.store import Change
from tests.app.compat.test_shapes import make_snapshot
from tests.doubles import Recorder
from tests.doubles import messages as written


def change(snapshot: dict) -> Outgoing:
    """A change as the hub hands it to every client."""
    frame = transport.frame_text(messages.update(Change(snapshot["seq"], snapshot), ttl_s=5.0))
    return Outgoing(snapshot["account_index"], snapshot["seq"], frame, snapshot)


def resync(snapshot: dict) -> Outgoing:
    frame = transport.frame_text(messages.account_message("snapshot", snapshot, 5.0, resync=True))
    return Outgoing(snapshot["account_index"], snapshot["seq"], frame, snapshot)


def lighter_client(encoder: Encoder | None = None) -> LighterClient:
    return LighterClient(Recorder(), 64, Metrics(), 5.0, encoder or Encoder())


def queued(client: LighterClient) -> list[dict]:
    return written(client.conn)


def step(snapshot: dict, seq: int, price: str | None = None) -> dict:
    """The next snapshot of the account: `seq` and (optionally) the first order repriced."""
    nxt = copy.deepcopy(snapshot)
    nxt["seq"] = seq
    if price is not None:
        nxt["sections"]["orders"]["data"][0]["price"] = price
    return nxt


def test_updates_are_deltas_shared_by_clients_and_gaps_get_full_frames() -> None:
    encoder, metrics = Encoder(), Metrics()
    a = LighterClient(Recorder(), 64, metrics, 5.0, encoder)
    b = LighterClient(Recorder(), 64, metrics, 5.0, encoder)
    s1 = make_snapshot()
    s1["seq"] = 1
    for client in (a, b):
        client.watch("account_all_orders", 123456)
        client.subscribe("account_all_orders", 123456, s1)
    assert [f["type"] for f in queued(a)] == ["subscribed/account_all_orders"]
    queued(b)

    item2 = change(step(s1, 2, price="2400.00"))
    a.offer(item2)
    b.offer(item2)
    [fa], [fb] = queued(a), queued(b)
    assert fa == fb and fa["type"] == "update/account_all_orders"
    assert fa["orders"]["0"][0]["price"] == "2400.00"
    assert encoder.change(item2).frame("account_all_orders", "update") is \
        encoder.change(item2).frame("account_all_orders", "update")  # built and encoded once

    a.offer(item2)  # a duplicate offer (resync race) is skipped
    assert queued(a) == []
    b.unsubscribe("account_all_orders", 123456)
    queued(b)
    s3, s4 = step(item2.snapshot, 3, price="2401.00"), step(item2.snapshot, 4, price="2402.00")
    encoder.change(change(s3))
    a.channels[("account_all_orders", 123456)] = 2  # pretend `a` missed seq 3: a delta from 3 cannot apply to it
    a.offer(change(s4))
    [full] = queued(a)
    assert full["type"] == "subscribed/account_all_orders" and full["orders"]["0"][0]["price"] == "2402.00"


def test_hub_heartbeats_become_pings_and_resyncs_full_frames() -> None:
    client = lighter_client()
    snapshot = make_snapshot()
    client.watch("user_stats", 123456)
    heartbeat = transport.frame_text(messages.heartbeat(5))
    status = transport.frame_text(messages.status({"server_time": 1}))
    client.ride(Riders(status + heartbeat, 2, heartbeat=True))
    client.ride(Riders(status, 1, heartbeat=False))  # /ws-only messages are dropped
    client.resync([resync(snapshot)])
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
    client.offer(change(filled))
    assert [f["type"] for f in queued(client)] == ["subscribed/account_all_orders"]


def test_store_reset_reuses_no_cached_change_and_rechains_from_the_resync() -> None:
    encoder = Encoder()
    client = lighter_client(encoder)
    s1 = make_snapshot()
    s1["seq"] = 9
    client.watch("account_all_orders", 123456)
    client.subscribe("account_all_orders", 123456, s1)
    client.offer(change(step(s1, 10, price="2400.00")))
    queued(client)
    # The store is wiped: the hub resyncs from seq 1, then seq 2 comes again with other data than before.
    fresh = step(s1, 1, price="100.00")
    client.resync([resync(fresh)])
    [full] = queued(client)
    assert full["type"] == "subscribed/account_all_orders" and full["orders"]["0"][0]["price"] == "100.00"
    client.offer(change(step(fresh, 2, price="101.00")))
    [update] = queued(client)
    assert update["type"] == "update/account_all_orders" and update["orders"]["0"][0]["price"] == "101.00"
