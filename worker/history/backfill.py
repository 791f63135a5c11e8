"""Fills missed while the worker was down (or the WebSocket was): paged from Lighter's trades endpoint.

Newest first, 100 per page, following `next_cursor` until a page reaches fills we already hold, the cursor ends or
HISTORY_BACKFILL_PAGES pages were read. Every page is spent from the egress's request budget (two slots: the
endpoint weighs twice the others) and waits for it, so polling keeps its share.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import gevent.event
import orjson
import requests

from core.accounts import Account
from core.history.events import fill_row
from core.snapshot import Row
from worker.protocol import SIMULATOR_HEADER, TRADES_BUDGET_SLOTS, TRADES_PAGE_LIMIT, TRADES_PATH
from worker.runtime import Runtime
from worker.upstream.egress import Egress
from worker.upstream.tokens import TokenError

log = logging.getLogger(__name__)
RETRY_AFTER_DEFAULT_S = 10.0


class BackfillError(Exception):
    """This run stops; the next one (HISTORY_BACKFILL_S later, or at the next start) tries again."""


def parse_trades(raw: bytes) -> tuple[list[Row], str]:
    """A `/api/v1/trades` body: its trades and the cursor of the next page ("" when there is none)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BackfillError("trades: malformed JSON") from None
    if not isinstance(body, dict) or body.get("code", 200) not in (0, 200):
        raise BackfillError(f"trades: error body {str(body)[:160]}")
    trades = body.get("trades")
    if not isinstance(trades, list):
        raise BackfillError("trades: trades missing")
    cursor = body.get("next_cursor")
    return [t for t in trades if isinstance(t, dict)], cursor if isinstance(cursor, str) else ""


class Backfill:
    def __init__(self, rt: Runtime, stop: gevent.event.Event) -> None:
        self.rt = rt
        self.stop = stop
        self.fetched = 0
        self.requests = 0

    def egress_of(self, account: Account) -> Egress:
        return next(e for e in self.rt.egresses if account in e.accounts)

    def account(self, account: Account, since_ts: int | None, max_pages: int, emit: Callable[[list[Row]], None]) -> int:
        """Fetch fills newer than `since_ts` (all up to `max_pages` pages when None); `emit` gets each page's rows.
        Returns the number of fills fetched."""
        egress = self.egress_of(account)
        cursor = ""
        fetched = 0
        for _ in range(max_pages):
            trades, cursor = self._page(egress, account, cursor)
            rows = [r for r in (fill_row(account.account_index, t, "backfill") for t in trades) if r is not None]
            if rows:
                emit(rows)
                fetched += len(rows)
            stamps = [t["timestamp"] for t in trades if isinstance(t.get("timestamp"), int)]
            oldest = min(stamps) if stamps else None
            if not cursor or not trades or (since_ts is not None and oldest is not None and oldest <= since_ts):
                break
        self.fetched += fetched
        return fetched

    def _page(self, egress: Egress, account: Account, cursor: str) -> tuple[list[Row], str]:
        for _ in range(TRADES_BUDGET_SLOTS):
            while (wait := egress.budget.wait_time()) > 0:
                if self.stop.wait(min(wait, 1.0)):
                    raise BackfillError("stopping")
            egress.budget.spend()
        params = {"account_index": str(account.account_index), "sort_by": "timestamp", "sort_dir": "desc",
                  "limit": str(TRADES_PAGE_LIMIT)}
        if cursor:
            params["cursor"] = cursor
        headers = {}
        if not account.public_only:
            try:
                headers["Authorization"] = self.rt.tokens.get(account)
            except TokenError as exc:
                raise BackfillError(f"no auth token: {exc}") from None
        egress.requests += 1
        self.requests += 1
        try:
            resp = egress.session.get(self.rt.settings.lighter_base_url + TRADES_PATH, params=params,
                                      headers=headers, timeout=self.rt.tuning.http_timeout_s)
        except requests.RequestException as exc:
            raise BackfillError(f"{type(exc).__name__} on {TRADES_PATH}") from None
        if resp.headers.get(SIMULATOR_HEADER) == "1":
            self.rt.simulator = True
        if resp.status_code == 429:
            egress.rate_limited += 1
            try:
                pause = min(max(float(resp.headers.get("Retry-After", "")), 1.0), 300.0)
            except ValueError:
                pause = RETRY_AFTER_DEFAULT_S
            egress.budget.pause(pause)
            raise BackfillError(f"rate limited (429), egress paused {pause:.0f}s")
        if resp.status_code != 200:
            egress.errors += 1
            if resp.status_code == 401:
                self.rt.tokens.invalidate(account.account_index)
            raise BackfillError(f"HTTP {resp.status_code} {resp.text[:160]}")
        return parse_trades(resp.content)
