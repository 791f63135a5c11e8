"""The simulator's `GET /api/v1/trades` (Lighter's shape: docs/lighter-protocol.md §2.3): every fill of the account,
newest first, paged by `next_cursor`, auth required, bad parameters answered as Lighter does; the rows pass the
SDK's strict `Trades` model."""
from __future__ import annotations

from typing import Any

import requests
from lighter.models.trades import Trades

from tests.fixtures.simulator import RunningSimulator
from tests.simulator.helpers import sdk_token


def get(sim: RunningSimulator, token: str | None, **params: Any) -> requests.Response:
    headers = {"Authorization": token} if token else {}
    return requests.get(sim.base_url + "/api/v1/trades", params=params, headers=headers, timeout=5)


def test_pages_every_fill_newest_first(simulator: RunningSimulator) -> None:
    simulator.control.pause()
    account = simulator.control.accounts()[0]
    index = account["account_index"]
    for n in range(7):
        simulator.control.trade(index, 0, "0.01", is_ask=bool(n % 2))
    token = sdk_token(account)
    seen: list[int] = []
    cursor = ""
    pages = 0
    while True:
        params: dict[str, Any] = {"account_index": index, "sort_by": "timestamp", "sort_dir": "desc", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = get(simulator, token, **params).json()
        Trades.model_validate(body)  # strict: every Trade field the SDK requires... is there
        seen += [t["trade_id"] for t in body["trades"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and seen == sorted(seen, reverse=True) and len(set(seen)) == 7
    first = get(simulator, token, account_index=index, sort_by="trade_id", limit=100).json()["trades"][0]
    assert first["bid_account_id"] == index or first["ask_account_id"] == index
    assert {"ask_account_pnl", "bid_account_pnl"} <= set(first)


def test_auth_and_parameters(simulator: RunningSimulator) -> None:
    account = simulator.control.accounts()[0]
    index = account["account_index"]
    assert get(simulator, None, account_index=index, sort_by="timestamp", limit=10).json()["code"] == 20001
    token = sdk_token(account)
    for bad in ({"limit": 0}, {"limit": 101}, {"sort_by": "price"}, {"cursor": "x"}):
        params = {"account_index": index, "sort_by": "timestamp", "limit": 10, **bad}
        response = get(simulator, token, **params)
        assert response.status_code == 400 and response.json()["code"] == 20001, bad
