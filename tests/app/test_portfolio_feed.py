"""app/ws/portfolio.py's PortfolioFeed with a fake clock and recording clients: throttling, staleness pushes."""
from __future__ import annotations

import json
from typing import Any

from app.ws.portfolio import PORTFOLIO_MIN_INTERVAL_S, STALE_CHECK_S, PortfolioFeed
from core.settings import Settings
from core.snapshot import Snapshot, new_snapshot, now_ms


class Recorder:
    """Stands in for app.ws.clients.Client: what was sent, and the close callbacks."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.closers: list[Any] = []

    def send(self, frame: bytes, count: int = 1) -> None:
        # An unmasked server text frame (RFC 6455 §5.2): 0x81, a 7-bit length or 126/127 and 2/8 more bytes.
        assert frame[0] == 0x81
        length = frame[1] & 0x7F
        start = 2 + {126: 2, 127: 8}.get(length, 0)
        self.frames.append(json.loads(frame[start:]))

    def when_closed(self, callback: Any) -> None:
        self.closers.append(callback)


_seq = [0]


def _snapshot(index: int, as_of: int, equity: str) -> Snapshot:
    """A new version of the account, as the worker writes it: the next seq."""
    _seq[0] += 1
    snap = new_snapshot(index, public_only=True, name="main", group=1)
    snap.update(as_of=as_of, seq=_seq[0], written_at=now_ms())
    snap["sections"]["summary"].update(source="ws", as_of=as_of, data={"total_asset_value": equity})
    snap["sections"]["positions"].update(source="ws", as_of=as_of, data=[])
    return snap


def test_throttled_pushes_and_staleness_with_time_alone() -> None:
    clock = [100.0]
    book = [_snapshot(7, now_ms(), "10.5")]
    feed = PortfolioFeed(Settings(cache_ttl=5.0), lambda: book, clock=lambda: clock[0])
    client = Recorder()
    feed.add(client)
    assert [f["type"] for f in client.frames] == ["portfolio"]
    assert client.frames[0]["portfolio"]["total"]["equity"] == "10.5"

    book[0] = _snapshot(7, now_ms(), "11")
    feed.on_changes()                               # the first change goes out at once
    book[0] = _snapshot(7, now_ms(), "12")
    feed.on_changes()                               # a burst: held back...
    clock[0] += PORTFOLIO_MIN_INTERVAL_S / 2
    feed.on_tick()
    assert [f["portfolio"]["total"]["equity"] for f in client.frames] == ["10.5", "11"]
    clock[0] += PORTFOLIO_MIN_INTERVAL_S
    feed.on_tick()                                  # ...and the latest state follows once the interval passed
    assert [f["portfolio"]["total"]["equity"] for f in client.frames] == ["10.5", "11", "12"]

    # Quiet feed: nothing is pushed while nothing changes...
    clock[0] += STALE_CHECK_S
    feed.on_tick()
    assert len(client.frames) == 3
    # ...until an account turns stale with time (here: its confirmation is older than CACHE_TTL).
    book[0] = _snapshot(7, now_ms() - 60_000, "12")
    clock[0] += STALE_CHECK_S
    feed.on_tick()
    assert len(client.frames) == 4 and client.frames[-1]["portfolio"]["total"]["stale"] is True

    for close in client.closers:                    # a closed client is forgotten
        close()
    assert not feed.clients
    book[0] = _snapshot(7, now_ms(), "13")
    feed.on_changes()
    clock[0] += 1
    feed.on_tick()
    assert len(client.frames) == 4


def test_figures_are_recomputed_for_a_new_version_only() -> None:
    """Figures are cached per account version: a store reset restarts seqs, and `written_at` tells the two apart."""
    from app.rest.portfolio import portfolio_body

    settings = Settings(cache_ttl=5.0)
    first = _snapshot(8, now_ms(), "10")
    first.update(seq=5, written_at=1)
    assert portfolio_body([first], settings)["total"]["equity"] == "10"
    reset = _snapshot(8, now_ms(), "20")
    reset.update(seq=5, written_at=2)   # the same seq after a reset, another write
    assert portfolio_body([reset], settings)["total"]["equity"] == "20"
    aged = {**reset, "as_of": now_ms() - 60_000}  # the same version read later: only freshness moves
    body = portfolio_body([aged], settings)
    assert body["total"]["equity"] == "20" and body["accounts"][0]["stale"] is True
