"""The `portfolio` subscription on /ws: the /api/portfolio body pushed to the clients that asked for it
(`/ws?portfolio=1`) whenever one of its inputs changes (docs/websocket.md).

The hub calls `on_changes` with the accounts as clients were last handed them, after each batch, and `on_tick`
after each wake-up of the watcher. The body is built once per push for every subscriber (core/portfolio's
arithmetic, through app/rest/portfolio.py, so it equals what REST serves at the same seqs), at most once per
PORTFOLIO_MIN_INTERVAL_S: a burst of changes costs one computation. Staleness changes with time alone (a stopped
worker writes nothing), so a tick re-pushes when an account's stale flag flips.
"""
from __future__ import annotations

import time
from collections.abc import Callable

from app.rest.portfolio import portfolio_body
from app.status import account_body
from app.ws import messages, transport
from app.ws.clients import Client
from core.settings import Settings
from core.snapshot import Snapshot

# At most one push per this many seconds (the latest state always goes out: a pending push waits for the tick).
PORTFOLIO_MIN_INTERVAL_S = 0.25
# How often a quiet feed is checked for accounts turning stale with time (ticks come every watcher wake-up).
STALE_CHECK_S = 0.5


class PortfolioFeed:
    def __init__(self, settings: Settings, accounts: Callable[[], list[Snapshot]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.accounts = accounts           # the tracked accounts, in configuration order (the mirror or store)
        self.clock = clock
        self.clients: set[Client] = set()
        self._pending = False
        self._sent_at = float("-inf")
        self._stale: tuple[bool, ...] | None = None
        self._checked_at = float("-inf")

    def add(self, client: Client) -> None:
        """Subscribe `client` and send it the portfolio now."""
        if client not in self.clients:
            self.clients.add(client)
            client.when_closed(lambda: self.clients.discard(client))
        client.send(self._frame(self.accounts()))

    def on_changes(self) -> None:
        if self.clients:
            self._pending = True
            self._flush()

    def on_tick(self) -> None:
        if not self.clients:
            return
        now = self.clock()
        if not self._pending and now - self._checked_at >= STALE_CHECK_S:
            # Nothing changed: push only when time alone moved an account into (or out of) staleness.
            self._checked_at = now
            ttl = self.settings.cache_ttl
            self._pending = tuple(account_body(s, ttl)["stale"] for s in self.accounts()) != self._stale
        self._flush()

    def _flush(self) -> None:
        if not self._pending or self.clock() - self._sent_at < PORTFOLIO_MIN_INTERVAL_S:
            return
        self._pending, self._sent_at = False, self.clock()
        frame = self._frame(self.accounts())
        for client in list(self.clients):
            client.send(frame)

    def _frame(self, snapshots: list[Snapshot]) -> bytes:
        body = portfolio_body(snapshots, self.settings)
        self._stale = tuple(a["stale"] for a in body["accounts"])
        return transport.frame_text(messages.encode({"type": "portfolio", "portfolio": body}))
