"""The backfill against the simulator: pages of fills through the egress's request budget (two slots a page), and
never past it: with no slot left it waits (here until told to stop) instead of sending."""
from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import gevent.event
import pytest
import requests

from core.accounts import Account
from core.env import Secret
from tests.fixtures.simulator import RunningSimulator
from tests.simulator.helpers import sdk_token
from worker.history.backfill import Backfill, BackfillError, parse_trades
from worker.upstream.budget import UpstreamBudget


def runtime(sim: RunningSimulator, per_window: int) -> tuple[Any, Account]:
    raw = sim.control.accounts()[0]
    account = Account(1, "a", raw["account_index"], raw["api_key_index"], Secret(raw["private_key"]))
    egress = SimpleNamespace(accounts=[account], session=requests.Session(), requests=0, rate_limited=0, errors=0,
                             budget=UpstreamBudget(per_window, time.monotonic, headroom=0.0, window_s=60.0))
    rt = SimpleNamespace(egresses=[egress], settings=SimpleNamespace(lighter_base_url=sim.base_url),
                         tuning=SimpleNamespace(http_timeout_s=2.0), simulator=False,
                         tokens=SimpleNamespace(get=lambda _account: sdk_token(raw), invalidate=lambda _index: None))
    return rt, account


def test_a_page_costs_two_budget_slots(simulator: RunningSimulator) -> None:
    simulator.control.pause()
    rt, account = runtime(simulator, per_window=10)
    for n in range(3):
        simulator.control.trade(account.account_index, 0, "0.01", is_ask=bool(n % 2))
    pages: list[list[dict[str, Any]]] = []
    fetched = Backfill(rt, gevent.event.Event()).account(account, None, 5, pages.append)
    assert fetched == 3 and [len(p) for p in pages] == [3] and {r["source"] for r in pages[0]} == {"backfill"}
    assert rt.egresses[0].budget.used() == 2 and rt.simulator is True


def test_no_slot_left_means_no_request(simulator: RunningSimulator) -> None:
    rt, account = runtime(simulator, per_window=1)
    simulator.control.reset_counters()
    stop = gevent.event.Event()
    stop.set()
    with pytest.raises(BackfillError, match="stopping"):
        Backfill(rt, stop).account(account, None, 5, lambda rows: None)
    requests_seen = simulator.control.counters()["requests"]
    assert not any("/api/v1/trades" in paths for paths in requests_seen.values())


@pytest.mark.parametrize("body", [b"{", b'{"code": 20001, "message": "bad"}', b'{"code": 200}', b"[]"])
def test_unusable_bodies_stop_the_run(body: bytes) -> None:
    with pytest.raises(BackfillError):
        parse_trades(body)


def test_cursor_and_rows() -> None:
    trades, cursor = parse_trades(b'{"code": 200, "next_cursor": "abc", "trades": [{"trade_id": 1}, 5]}')
    assert trades == [{"trade_id": 1}] and cursor == "abc"
    assert parse_trades(b'{"code": 200, "trades": []}') == ([], "")
