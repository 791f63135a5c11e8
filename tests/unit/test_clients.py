"""Client bookkeeping without sockets: which frames a /ws client is sent, and how many writes that takes.

The connection is stood in for by a recorder of writes (I/O is tested against real servers in tests/web).
"""
from __future__ import annotations

from app.clients import Client
from app.metrics import Metrics
from tests.doubles import Recorder


def live_client(accounts: set[int] | None = None) -> Client:
    client = Client(Recorder(), 256, Metrics(), accounts=accounts)
    client.release([])
    return client


def test_changes_that_piled_up_go_out_in_one_write_filtered_and_deduplicated() -> None:
    client = live_client(accounts={1, 2})
    client.offer(1, 5, b"<1@5>")
    client.offer_many([(1, 5, b"<1@5 again>"), (3, 6, b"<3@6>"), (2, 7, b"<2@7>"), (1, 8, b"<1@8>")])
    assert client.conn.frames == [b"<1@5>", b"<2@7><1@8>"]
    assert client.metrics.frames_sent == 3


def test_a_client_still_syncing_gets_piled_up_changes_after_its_snapshots() -> None:
    client = Client(Recorder(), 256, Metrics())
    client.offer_many([(1, 5, b"<1@5>"), (1, 6, b"<1@6>")])
    assert client.conn.frames == []
    client.release([(1, 5, b"<snapshot 1@5>")])
    assert client.conn.frames == [b"<snapshot 1@5>", b"<1@6>"]
