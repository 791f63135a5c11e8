"""The hub in-process: the feed is driven through the hub's typed entry points (what app/feed/watcher.py calls),
clients write to recorders, and the store is a file store in a temporary directory (no servers, no greenlets).
"""
from __future__ import annotations

from typing import Any

import pytest

from app.compat.stream import Encoder, LighterClient
from app.metrics import Metrics
from app.status import StatusCache
from app.ws.clients import Client
from app.ws.hub import Hub
from app.ws.messages import CONFIRM_MAX_BYTES
from core.settings import from_env
from core.snapshot import new_snapshot
from core.store import Change, Store
from core.tuning import WebTuning
from tests.doubles import Recorder, messages

TUNING = WebTuning(ws_queue_frames=64, ws_heartbeat_s=3600.0, ws_close_grace_s=1.0, status_every_s=3600.0,
                   status_refresh_s=3600.0, mirror_max_age_s=1.0, file_poll_s=0.02, rate_limit_keys=100)


class Feed:
    """Stands in for the store watcher: writes the store as the worker does and hands the hub what it would."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store, self.hub, self.seq, self.prev = store, hub, 0, {}

    def write(self, account: int, collateral: str = "1") -> Change:
        self.seq += 1
        snapshot = new_snapshot(account, public_only=False)
        snapshot.update(seq=self.seq, prev_seq=self.prev.get(account))
        snapshot["sections"]["summary"].update(source="ws", as_of=1, data={"collateral": collateral})
        self.store.put_account(snapshot, self.seq)
        self.prev[account] = self.seq
        return Change(self.seq, {**snapshot, "written_at": None})

    def track(self, *accounts: int) -> list[Change]:
        self.store.set_tracked(list(accounts))
        return [self.write(a) for a in accounts]


@pytest.fixture
def world(tmp_path: Any) -> tuple[Hub, Feed]:
    store = Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))
    hub = Hub(store, StatusCache(store, 5.0, 0.5, 1.0), 5.0, Metrics(), TUNING, max_clients=10)
    feed = Feed(store, hub)
    feed.track(1, 2)
    hub.on_start(store.head(), store.accounts())
    return hub, feed


def connect(hub: Hub, accounts: set[int] | None = None, patches: bool = False) -> Client:
    """A /ws client as app/ws/route.py connects it: registered, then synced with snapshots."""
    client = Client(Recorder(), hub.queue_size, hub.metrics, hub.close_grace_s, accounts)
    hub.register(client)
    if patches:
        hub.send_patches(client)
    hub.sync(client, None, None)
    return client


def kinds(client: Client) -> list[tuple[str, int | None, int | None]]:
    return [(m["type"], m.get("account_index"), m.get("seq")) for m in messages(client.conn)]


def test_changes_go_out_in_feed_order_once_each(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    everyone, only_two = connect(hub), connect(hub, accounts={2})
    assert kinds(everyone) == [("snapshot", 1, 1), ("snapshot", 2, 2)]
    assert kinds(only_two) == [("snapshot", 2, 2)]
    a, b, c = feed.write(2), feed.write(1), feed.write(2)
    hub.on_changes([a])
    hub.on_changes([b, c])  # piled up: one write per client
    assert len(everyone.conn.frames) == 2 and hub.seq == 5
    hub.on_changes([b])     # delivered again (a resync race): never sent twice
    assert kinds(everyone) == [("update", 2, 3), ("update", 1, 4), ("update", 2, 5)]
    assert kinds(only_two) == [("update", 2, 3), ("update", 2, 5)]


def test_changes_during_a_clients_initial_sync_wait_for_its_snapshots(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    client = Client(Recorder(), hub.queue_size, hub.metrics, hub.close_grace_s)
    hub.register(client)
    read = hub.store.account
    during: list[Change] = []

    def account(index: int) -> Any:
        # The watcher runs while the sync waits on the store: one change lands before this read, one after.
        if not during:
            during.append(feed.write(1))
            hub.on_changes([during[0]])
        snapshot = read(index)
        if len(during) == 1:
            during.append(feed.write(1))
            hub.on_changes([during[1]])
        return snapshot

    hub.store.account = account  # type: ignore[method-assign]
    hub.sync(client, None, None)
    # Snapshots first; the change the snapshot already holds (seq 3) is not sent again; seq 4 follows.
    assert kinds(client) == [("snapshot", 1, 3), ("snapshot", 2, 2), ("update", 1, 4)]


def test_status_and_heartbeat_ride_in_front_of_the_next_change(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    wanting, other = connect(hub, accounts={1}), connect(hub, accounts={2})
    messages(wanting.conn), messages(other.conn)
    hub.heartbeat_s = 0.0  # due at every tick
    hub.on_tick(quiet=False)  # a wake-up with a change: the status (first read) and heartbeat wait for it
    assert wanting.conn.frames == [] and other.conn.frames == []
    hub.on_changes([feed.write(1)])
    assert len(wanting.conn.frames) == 1 and len(other.conn.frames) == 1  # one write each
    assert [m["type"] for m in messages(wanting.conn)] == ["status", "heartbeat", "update"]
    assert [m["type"] for m in messages(other.conn)] == ["status", "heartbeat"]
    hub.on_tick(quiet=True)  # no change to ride with: the heartbeat goes out on its own
    assert [m["type"] for m in messages(wanting.conn)] == ["heartbeat"]
    assert [m["type"] for m in messages(other.conn)] == ["heartbeat"]


def test_a_resync_gives_every_client_fresh_snapshots_even_after_a_store_reset(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    live = connect(hub)
    messages(live.conn)
    syncing = Client(Recorder(), hub.queue_size, hub.metrics, hub.close_grace_s)
    hub.register(syncing)
    syncing.holding = True  # its own sync is in flight
    hub.on_outage()
    [down] = messages(live.conn)
    assert down["type"] == "status" and down["status"]["store"]["reachable"] is False
    messages(syncing.conn)
    # The store came back empty and the worker rewrote it: seqs start again.
    hub.store._cache.clear()
    feed.seq, feed.prev = 0, {}
    feed.track(1, 2)
    hub.on_resync(hub.store.head(), hub.store.accounts())
    resynced = messages(live.conn)
    assert [(m["type"], m["account_index"], m["seq"], m["resync"]) for m in resynced] == [
        ("snapshot", 1, 1, True), ("snapshot", 2, 2, True)]
    assert syncing.conn.frames == []
    syncing.release([])
    assert [m["resync"] for m in messages(syncing.conn)] == [True, True]
    hub.on_changes([feed.write(1)])  # seq 3 is lower than what the client had before the reset: still sent
    assert kinds(live) == [("update", 1, 3)]
    assert hub.metrics.resyncs._value.get() == 1


def test_patches_go_to_patch_clients_holding_prev_seq_and_full_updates_to_the_rest(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    patching, full = connect(hub, patches=True), connect(hub)
    messages(patching.conn), messages(full.conn)
    change = feed.write(1, collateral="2")
    hub.on_changes([change])
    [patch], [whole] = messages(patching.conn), messages(full.conn)
    assert "patch" in patch and "account" not in patch and patch["prev_seq"] == 1
    assert {"op": "replace", "path": "/sections/summary/data/collateral", "value": "2"} in patch["patch"]
    assert whole["account"]["sections"]["summary"]["data"]["collateral"] == "2"
    hub.unregister(patching)
    hub.on_changes([feed.write(1, collateral="3")])  # nobody takes patches: none is encoded
    assert "patch" not in messages(full.conn)[0] and hub.patch_clients == 0


def test_lighter_clients_get_pings_and_frames_built_from_the_snapshots(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    client = LighterClient(Recorder(), hub.queue_size, hub.metrics, hub.close_grace_s, Encoder())
    hub.register(client)
    client.watch("user_stats", 1)
    client.subscribe("user_stats", 1, None)  # nothing read yet: its first frame comes from the feed
    hub.heartbeat_s = 0.0
    hub.on_tick(quiet=True)
    assert messages(client.conn) == [{"type": "ping"}]  # the /ws status is not sent to Lighter clients
    hub.on_changes([feed.write(2), feed.write(1, collateral="5")])
    [stats] = messages(client.conn)
    assert stats["type"] == "subscribed/user_stats" and stats["stats"]["collateral"] == "5"
    hub.on_resync(hub.store.head(), hub.store.accounts())
    assert [m["type"] for m in messages(client.conn)] == ["subscribed/user_stats"]


def test_the_initial_sync_comes_from_the_mirror_and_shares_one_encoded_frame(world, monkeypatch) -> None:
    """A connect burst reads no store per client (the mirror), and each account is encoded once for all of them."""
    from app.feed.mirror import Mirror

    hub, feed = world
    mirror = Mirror(feed.store, 60.0)
    mirror.reset()

    def no_store(*args: Any) -> Any:
        raise AssertionError("the initial sync read the store")

    for name in ("account", "accounts", "tracked", "changes_since"):
        monkeypatch.setattr(feed.store, name, no_store)
    clients = []
    for _ in range(3):
        client = Client(Recorder(), hub.queue_size, hub.metrics, hub.close_grace_s)
        hub.register(client)
        hub.sync(client, None, None, mirror)
        clients.append(client)
    first, second = clients[0].conn.parts, clients[1].conn.parts
    assert len(first) == 1 and len(first[0]) == 2  # both snapshots in one write
    assert all(a is b for a, b in zip(first[0], second[0], strict=True))  # the same bytes objects
    assert [[m["account_index"] for m in messages(c.conn)] for c in clients] == [[1, 2]] * 3


def test_a_confirmation_is_a_small_frame_unless_the_client_asked_for_full_ones(world: tuple[Hub, Feed]) -> None:
    hub, feed = world
    small, patching, legacy = connect(hub), connect(hub, patches=True), connect(hub)
    legacy.confirm_full = True  # ?v=1 or ?confirm=full
    data = feed.write(1, collateral="5")
    data.snapshot["version"] = data.seq
    hub.on_changes([data])
    for client in (small, patching, legacy):
        messages(client.conn)
    confirm = Change(data.seq + 1, {**data.snapshot, "seq": data.seq + 1, "prev_seq": data.seq, "as_of": 9,
                                    "sections": {**data.snapshot["sections"],
                                                 "summary": {**data.snapshot["sections"]["summary"], "as_of": 9}}})
    hub.on_changes([confirm])
    sizes = [sum(len(f) for f in client.conn.frames) for client in (small, legacy)]
    [a], [b], [c] = messages(small.conn), messages(patching.conn), messages(legacy.conn)
    assert a == b and a["type"] == "confirm" and "account" not in a and a["sections"]["summary"][0] == 9
    assert c["type"] == "update" and c["account"]["as_of"] == 9
    assert sizes[0] <= CONFIRM_MAX_BYTES < sizes[1]


def test_lighter_clients_get_nothing_for_a_confirmation(world: tuple[Hub, Feed]) -> None:
    """Lighter does not resend an unchanged account: neither does /stream, whatever /ws clients get."""
    hub, feed = world
    client = LighterClient(Recorder(), hub.queue_size, hub.metrics, hub.close_grace_s, Encoder())
    hub.register(client)
    for channel in ("account_all", "user_stats"):
        client.watch(channel, 1)
        client.subscribe(channel, 1, None)
    data = feed.write(1, collateral="5")
    data.snapshot["version"] = data.seq
    hub.on_changes([data])
    assert {m["type"] for m in messages(client.conn)} == {"subscribed/account_all", "subscribed/user_stats"}
    confirm = Change(data.seq + 1, {**data.snapshot, "seq": data.seq + 1, "prev_seq": data.seq, "as_of": 9})
    hub.on_changes([confirm])
    assert messages(client.conn) == []
    feed.seq = feed.prev[1] = confirm.seq
    hub.on_changes([feed.write(1, collateral="6")])  # and a change of data still goes out, as an update
    assert [m["type"] for m in messages(client.conn)] == ["update/user_stats"]  # (the stats carry collateral)
