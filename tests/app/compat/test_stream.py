"""/stream speaking Lighter's protocol to a raw client: auth, errors, ping, and order deltas that add up to ours."""
from __future__ import annotations

import json
from typing import Any

from lighter.models import Order
from websockets.sync.client import connect

from tests.app.compat.conftest import TOKEN, Stack, wait_for


def _open(stack: Stack, query: str = "") -> Any:
    return connect(stack.stream_url + query, open_timeout=10, max_size=None, compression=None)


def _recv(ws: Any, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def _send(ws: Any, **frame: Any) -> None:
    ws.send(json.dumps(frame))


def test_protocol_auth_errors_and_unsubscribe(stack: Stack) -> None:
    index = stack.accounts[0]["account_index"]
    with _open(stack) as ws:  # no token on the URL: each subscribe must carry ours, as Lighter's `auth`
        assert _recv(ws)["type"] == "connected"
        _send(ws, type="subscribe", channel=f"account_all_orders/{index}")
        assert _recv(ws)["error"] == {"code": 20001,
                                      "message": f"invalid param : auth field is required: account_all_orders:{index}"}
        _send(ws, type="subscribe", channel=f"user_stats/{index}", auth="wrong")
        assert _recv(ws)["error"]["code"] == 20013
        for bad, code in ((f"order_book/{index}", 30005), ("account_all/1", 21100)):
            _send(ws, type="subscribe", channel=bad, auth=TOKEN)
            assert _recv(ws) == {"type": "error", "error": {"code": code, "message": {
                30005: "Invalid Channel", 21100: "account not found"}[code]}}
        ws.send("{not json")
        assert _recv(ws)["error"]["code"] == 30000
        _send(ws, type="ping")
        assert _recv(ws) == {"type": "pong"}
        _send(ws, type="subscribe", channel=f"user_stats/{index}", auth=TOKEN)
        stats = _recv(ws)
        assert stats["type"] == "subscribed/user_stats" and stats["channel"] == f"user_stats:{index}"
        assert isinstance(stats["stats"]["collateral"], str)
        _send(ws, type="unsubscribe", channel=f"user_stats/{index}")
        frame = _recv(ws)
        while frame["type"] == "update/user_stats":  # may have been queued just before the unsubscribe
            frame = _recv(ws)
        assert frame == {"type": "unsubscribed", "channel": f"user_stats:{index}"}
        _send(ws, type="unsubscribe", channel=f"user_stats/{index}")
        assert _recv(ws)["error"]["code"] == 30002
    with _open(stack, "?auth=wrong") as ws:
        assert _recv(ws)["error"]["code"] == 20013


def test_order_deltas_add_up_to_our_active_orders(stack: Stack) -> None:
    """Keep a map by order_index from `subscribed` + `update` frames (non-open status = gone): it ends equal to
    the orders our own API serves, once the simulated market is paused."""
    index = stack.accounts[0]["account_index"]
    book: dict[int, dict] = {}
    seen = {"updates": 0}

    def apply(timeout: float) -> None:
        frame = _recv(ws, timeout)
        if not frame["type"].endswith("/account_all_orders"):
            return
        if frame["type"].startswith("subscribed/"):
            book.clear()
        else:
            seen["updates"] += 1
        for rows in frame["orders"].values():
            for order in rows:
                Order.model_validate(order, strict=True)
                if order["status"] in ("open", "pending", "in-progress"):
                    book[order["order_index"]] = order
                else:
                    book.pop(order["order_index"], None)

    def ours() -> dict[int, dict]:
        return {o["order_index"]: o for o in stack.ours(index)["sections"]["orders"]["data"]}

    with _open(stack, f"?auth={TOKEN}") as ws:
        assert _recv(ws)["type"] == "connected"
        _send(ws, type="subscribe", channel=f"account_all_orders/{index}")
        wait_for(lambda: seen["updates"] >= 3, timeout=30, message="three order updates", idle=apply)
        stack.sim.control.pause()
        try:
            wait_for(lambda: book == ours(), timeout=20, message="our map equal to our API's orders", idle=apply)
        finally:
            stack.sim.control.resume()
