"""Figures the docs state, measured on a live stack (simulator, worker, web) so they cannot drift: the sizes of a
full /ws update and of patch updates in docs/websocket.md, and what docs/api.md says about polling."""
from __future__ import annotations

import json
import re

import pytest
import requests
from websockets.sync.client import connect

from tests.app.conftest import until
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.paths import DOCS
from tests.waiting import wait_for

KB = 1000  # the docs' KB is 1,000 bytes


def stated_range(pattern: str, text: str) -> tuple[float, float]:
    """(low, high) in bytes from the "A–B KB" matched by `pattern`'s one group."""
    match = re.search(pattern, text, re.S)
    assert match and "–" in match.group(1), f"docs no longer state a range for {pattern!r}"
    low, high = (float(x) for x in match.group(1).split("–"))
    return low * KB, high * KB


@pytest.mark.slow  # a whole stack and a few dozen trades (~20 s)
def test_websocket_sizes_in_the_docs_are_measured_ones(tmp_path, simulator):
    doc = (DOCS / "websocket.md").read_text()
    full_low, full_high = stated_range(r"A full update repeats the whole account \(([\d.–]+) KB", doc)
    confirm_low, confirm_high = stated_range(r"an `as_of` confirmation is ([\d.–]+) KB", doc)
    trade_low, trade_high = stated_range(r"a trade ([\d.–]+) KB", doc)

    store_env = {"CACHE_DIR": str(tmp_path / "store")}
    account = simulator.control.accounts()[0]["account_index"]
    env = worker_env_for(simulator, store_env, accounts=1, UPSTREAM_TIER="unlimited")
    with run_worker(env), run_web(store_env) as web:
        # Let the market fill the account's recent trades (the docs' "50 recent trades").
        wait_for(lambda: len(requests.get(f"{web.url}/api/accounts/{account}", timeout=5).json()["sections"]
                              ["trades"]["data"] or []) >= 50, 60, "50 recent trades", 0.5,
                 ignore=(KeyError, requests.RequestException))  # 503 until the worker's first write
        simulator.control.pause()
        with connect(web.ws_url + "?updates=full", open_timeout=10, max_size=None) as full, \
                connect(web.ws_url + "?updates=patch&confirm=full", open_timeout=10, max_size=None) as patched:
            # (confirm=full: confirmations as patches, the figure the docs state; protocol 2's `confirm` frames are
            # held to their bound by tests/app/test_quiet.py)
            until(full, lambda m: m.get("type") == "snapshot")
            until(patched, lambda m: m.get("type") == "snapshot")
            fulls, trades, confirms = [], [], []
            for n in range(6):
                simulator.control.trade(account, 0, "0.01", is_ask=bool(n % 2))
                fulls.append(len(_next_update(full, lambda m: "account" in m)))
                trades.append(len(_next_update(patched, lambda m: "patch" in m and _trade(m))))
            while len(confirms) < 3:  # paused market: only as_of moves (upstream confirms the data)
                raw = _next_update(patched, lambda m: "patch" in m)
                if not _trade(json.loads(raw)):
                    confirms.append(len(raw))
    print(f"full {fulls} trade patches {trades} confirmations {confirms}")
    assert all(full_low <= size <= full_high for size in fulls), (fulls, full_low, full_high)
    assert all(trade_low <= size <= trade_high for size in trades), (trades, trade_low, trade_high)
    assert all(confirm_low <= size <= confirm_high for size in confirms), (confirms, confirm_low, confirm_high)


def _trade(message: dict) -> bool:
    return any(op["path"].startswith("/sections/trades/data") for op in message["patch"])


def _next_update(ws, predicate) -> str:
    """The raw text of the next update frame that satisfies `predicate`."""
    while True:
        raw = ws.recv(timeout=15)
        message = json.loads(raw)
        if message.get("type") == "update" and predicate(message):
            return raw
