"""Client bookkeeping without sockets: which frames a /ws client is sent, and how many writes that takes.

The connection is stood in for by a recorder of writes (I/O is tested against real servers in tests/app), except
for the byte bound at the end, which runs on a real socket pair whose peer never reads.
"""
from __future__ import annotations

import _socket
import socket

import gevent

from app.metrics import Metrics
from app.ws import transport
from app.ws.clients import Client, Outgoing, Riders
from app.ws.codes import CloseCode
from core.snapshot import new_snapshot
from tests.doubles import Recorder
from tests.waiting import wait_for


def item(account: int, seq: int, frame: bytes, patch: bytes | None = None, prev_seq: int | None = None) -> Outgoing:
    """An item as the hub hands it: the frames stand for themselves; the snapshot is only for Lighter clients."""
    return Outgoing(account, seq, frame, {**new_snapshot(account, False), "seq": seq}, patch, prev_seq)


def new_client(accounts: set[int] | None = None) -> Client:
    return Client(Recorder(), 256, Metrics(), close_grace_s=5.0, accounts=accounts)


def live_client(accounts: set[int] | None = None) -> Client:
    client = new_client(accounts)
    client.release([])
    return client


def test_changes_that_piled_up_go_out_in_one_write_filtered_and_deduplicated() -> None:
    client = live_client(accounts={1, 2})
    client.offer(item(1, 5, b"<1@5>"))
    client.offer_many([item(1, 5, b"<1@5 again>"), item(3, 6, b"<3@6>"), item(2, 7, b"<2@7>"), item(1, 8, b"<1@8>")])
    assert client.conn.frames == [b"<1@5>", b"<2@7><1@8>"]
    assert client.metrics.frames_sent == 3


def test_a_client_still_syncing_gets_piled_up_changes_after_its_snapshots() -> None:
    client = new_client()
    client.offer_many([item(1, 5, b"<1@5>"), item(1, 6, b"<1@6>")])
    assert client.conn.frames == []
    client.release([item(1, 5, b"<snapshot 1@5>")])
    assert client.conn.frames == [b"<snapshot 1@5>", b"<1@6>"]


def patch_client(accounts: set[int] | None = None) -> Client:
    client = live_client(accounts)
    client.patches = True
    return client


def test_a_patch_goes_only_to_a_client_holding_the_account_at_prev_seq() -> None:
    holding, behind, full = patch_client(), patch_client(), live_client()
    for client in (holding, behind, full):
        client.release([item(1, 5, b"<snapshot 1@5>")])
    behind.last_sent[1] = 4  # as if it held an older version (it resumed from a replay, say)
    for client in (holding, behind, full):
        client.offer(item(1, 7, b"<full 1@7>", b"<patch 5->7>", 5))
        client.offer(item(1, 8, b"<full 1@8>", None, 7))  # no patch could express this one
        client.offer(item(1, 9, b"<full 1@9>", b"<patch 7->9>", 7))  # prev_seq 7 is not what anyone holds now
    assert holding.conn.frames[1:] == [b"<patch 5->7>", b"<full 1@8>", b"<full 1@9>"]
    assert behind.conn.frames[1:] == [b"<full 1@7>", b"<full 1@8>", b"<full 1@9>"]
    assert full.conn.frames[1:] == [b"<full 1@7>", b"<full 1@8>", b"<full 1@9>"]


def test_patches_that_piled_up_chain_within_one_write_and_during_the_initial_sync() -> None:
    live = patch_client()
    live.release([item(1, 5, b"<snapshot 1@5>"), item(2, 6, b"<snapshot 2@6>")])
    live.offer_many([item(1, 7, b"<full 1@7>", b"<p1 5->7>", 5), item(2, 8, b"<full 2@8>", b"<p2 6->8>", 6),
                     item(1, 9, b"<full 1@9>", b"<p1 7->9>", 7)])
    assert live.conn.frames == [b"<snapshot 1@5><snapshot 2@6>", b"<p1 5->7><p2 6->8><p1 7->9>"]

    syncing = new_client()
    syncing.patches = True
    syncing.offer_many([item(1, 5, b"<full 1@5>", b"<p1 3->5>", 3), item(1, 7, b"<full 1@7>", b"<p1 5->7>", 5)])
    syncing.release([item(1, 5, b"<snapshot 1@5>")])  # the snapshot read already covers seq 5
    assert syncing.conn.frames == [b"<snapshot 1@5>", b"<p1 5->7>"]


def test_the_initial_sync_is_one_write_between_its_lead_and_tail() -> None:
    client = new_client()
    client.offer(item(1, 6, b"<1@6>"))  # live meanwhile: after the sync, in a write of its own
    client.release([item(1, 5, b"<snapshot 1@5>"), item(2, 5, b"<snapshot 2@5>")], b"<hello>", b"<status>")
    assert client.conn.frames == [b"<hello><snapshot 1@5><snapshot 2@5><status>", b"<1@6>"]
    assert client.metrics.frames_sent == 4 + 1
    assert client.sync_bytes == len(b"<hello><snapshot 1@5><snapshot 2@5><status>")


def test_frames_for_everyone_ride_in_front_of_the_next_change_in_the_same_write() -> None:
    wanting, other, syncing = live_client(accounts={1}), live_client(accounts={2}), new_client()
    riders = Riders(b"<status><heartbeat>", 2, heartbeat=True)
    for client in (wanting, other, syncing):
        client.offer(item(1, 5, b"<1@5>"), riders) if client.wants(1) else client.ride(riders)
    assert wanting.conn.frames == [b"<status><heartbeat><1@5>"]
    assert other.conn.frames == [b"<status><heartbeat>"]
    assert syncing.conn.frames == [b"<status><heartbeat>"]  # now; its change waits for its snapshots
    syncing.release([item(1, 4, b"<snapshot 1@4>")])
    assert syncing.conn.frames[1:] == [b"<snapshot 1@4>", b"<1@5>"]

    status = Riders(b"<status>", 1, heartbeat=False)
    wanting.offer_many([item(1, 6, b"<1@6>"), item(2, 7, b"<2@7>")], status)
    wanting.offer(item(1, 6, b"<1@6 again>"), status)  # nothing new for it: the riders still go
    assert wanting.conn.frames[1:] == [b"<status><1@6>", b"<status>"]
    assert wanting.metrics.frames_sent == 3 + 2 + 1


# -- the byte bound, on real sockets ----------------------------------------------------------------------------
def _connection(rcvbuf: int = 4096) -> tuple[transport.Connection, socket.socket]:
    """A transport connection whose peer never reads (a socketpair with small buffers)."""
    ours, peer = socket.socketpair()
    for sock in (ours, peer):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    raw = _socket.socket(fileno=ours.detach())
    raw.setblocking(False)
    return transport.Connection(raw, "pair", 4096), peer


def test_the_backlog_is_counted_in_bytes_and_holds_the_frames_every_client_shares() -> None:
    frame = transport.frame_text("x" * 20_000)
    rider = transport.frame_text('{"type":"heartbeat"}')
    (first, peer1), (second, peer2) = _connection(), _connection()
    try:
        for _ in range(50):
            assert first.write(rider, frame) == first.backlog
            second.write(frame)
        waiting = list(first._backlog)
        assert first.backlog == sum(len(part) for part in waiting) > 900_000
        # Not copies: the very objects the hub built once sit in both backlogs.
        assert sum(part is frame for part in waiting) >= 49 and sum(part is rider for part in waiting) >= 49
        assert sum(part is frame for part in second._backlog) >= 49
        first.drop_backlog()
        assert first.backlog == sum(len(part) for part in first._backlog) < len(frame)
    finally:
        for conn, peer in ((first, peer1), (second, peer2)):
            conn._finish()
            peer.close()


def test_a_client_owing_more_than_its_byte_bound_is_closed_as_too_slow() -> None:
    conn, peer = _connection()
    metrics = Metrics()
    client = Client(conn, 256, metrics, close_grace_s=1.0, backlog_bytes=100_000)
    client.release([])
    frame = transport.frame_text("y" * 10_000)
    try:
        for sent in range(1, 100):
            client.offer(item(1, sent, frame))
            if client.closing is not None:
                break
        assert client.closing is not None and client.closing[0] == CloseCode.TOO_SLOW
        assert 100_000 / len(frame) <= sent <= 100_000 / len(frame) + 20  # + what the kernel took
        assert conn.backlog <= len(frame) + 200  # dropped: at most the rest of one frame and the close frame
        assert metrics.messages_dropped.labels(route="/ws")._value.get() > 0
    finally:
        conn._finish()
        peer.close()


def test_the_initial_sync_is_allowed_on_top_of_the_bound() -> None:
    conn, peer = _connection()
    client = Client(conn, 256, Metrics(), close_grace_s=1.0, backlog_bytes=50_000)
    snapshots = [item(a, a, transport.frame_text("z" * 20_000)) for a in range(1, 6)]  # 100 KB at once
    try:
        client.release(snapshots)
        assert client.closing is None and conn.backlog > 50_000
        client.offer(item(1, 10, transport.frame_text("z" * 60_000)))  # past sync + bound: cut
        assert client.closing is not None and client.closing[0] == CloseCode.TOO_SLOW
    finally:
        conn._finish()
        peer.close()


def test_a_backlog_is_caught_up_in_gathered_sends_whole_and_in_order(monkeypatch) -> None:
    """Once the peer reads again, what was owed goes out in order, many buffers per send (not one send each), and
    a buffer the kernel took in part is finished before the next."""
    conn, peer = _connection()
    frames = [transport.frame_text(f"{n:05d}" * 1000) for n in range(300)]  # ~5 KB each, 1.5 MB in all
    sends: list[int] = []
    real = conn._sock

    class Counting:
        def __getattr__(self, name: str) -> object:
            return getattr(real, name)

        def send(self, data: bytes) -> int:
            sends.append(1)
            return real.send(data)

        def sendmsg(self, parts: list[bytes]) -> int:
            sends.append(len(parts))
            return real.sendmsg(parts)

    monkeypatch.setattr(conn, "_sock", Counting())
    received = bytearray()
    try:
        for frame in frames:
            conn.write(frame)
        assert conn.backlog > 0
        expected = b"".join(frames)

        def drain() -> bool:
            try:
                while chunk := peer.recv(1 << 20):
                    received.extend(chunk)
            except BlockingIOError:
                pass
            return len(received) >= len(expected)

        peer.setblocking(False)
        wait_for(drain, 10, "the peer to receive everything owed", interval=0.01, idle=gevent.sleep)
        assert bytes(received) == expected and conn.backlog == 0
        assert max(sends) > 1 and len(sends) < len(frames)  # gathered: fewer sends than buffers
    finally:
        conn._finish()
        peer.close()
