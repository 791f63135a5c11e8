"""The /stream WebSocket with a real client: channels, snapshots, updates, errors, keepalive, geo-block."""
from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.simulator.helpers import recv_until, sdk_token


def _sub(ws, channel: str, **extra) -> None:
    ws.send(json.dumps({"type": "subscribe", "channel": channel, **extra}))


def _type(t: str):
    return lambda f: f.get("type") == t


def test_channels_snapshots_updates_and_errors(simulator) -> None:
    acct = simulator.control.accounts()[0]
    idx = acct["account_index"]
    with connect(simulator.ws_url) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert first["type"] == "connected" and uuid.UUID(first["session_id"])
        _sub(ws, f"account_all/{idx}")
        _sub(ws, f"user_stats/{idx}")
        _sub(ws, f"account_all_orders/{idx}", auth=sdk_token(acct))
        _sub(ws, "order_book/0")
        snap = recv_until(ws, _type("subscribed/account_all"))
        assert snap["channel"] == f"account_all:{idx}" and snap["positions"] and "timestamp" in snap
        stats = recv_until(ws, _type("subscribed/user_stats"))["stats"]
        assert stats["portfolio_value"] == stats["total_stats"]["portfolio_value"]
        orders = recv_until(ws, _type("subscribed/account_all_orders"))["orders"]
        assert all(o["status"] == "open" for market in orders.values() for o in market)
        book = recv_until(ws, _type("subscribed/order_book"))["order_book"]
        assert book["asks"] and book["bids"]
        for kind in ("account_all", "user_stats", "order_book"):
            recv_until(ws, _type(f"update/{kind}"))
        upd = recv_until(ws, _type("update/order_book"))
        assert upd["order_book"]["begin_nonce"] == upd["order_book"]["nonce"] - 1
        counters = simulator.control.counters()["ws"]
        assert counters["connections"] == 1 and counters["subscriptions"][f"account_all/{idx}"] == 1
        _sub(ws, "nope/1")
        assert recv_until(ws, _type("error"))["error"] == {"code": 30005, "message": "Invalid Channel"}
        _sub(ws, f"account_all_orders/{idx}")
        err = recv_until(ws, _type("error"))["error"]
        assert err["code"] == 20001 and err["message"].endswith(f"account_all_orders:{idx}")
        _sub(ws, f"account_all_orders/{idx}", auth=sdk_token(acct, expires_in_s=9 * 3600))
        assert recv_until(ws, _type("error"))["error"]["code"] == 20013
        ws.send(json.dumps({"type": "ping"}))
        recv_until(ws, _type("pong"))
        ws.send(json.dumps({"type": "unsubscribe", "channel": "order_book/0"}))
        assert recv_until(ws, _type("unsubscribed"))["channel"] == "order_book:0"


def test_order_updates_carry_only_changed_orders(simulator) -> None:
    acct = simulator.control.accounts()[0]
    idx = acct["account_index"]
    with connect(simulator.ws_url) as ws:
        recv_until(ws, _type("connected"))
        _sub(ws, f"account_all_orders/{idx}", auth=sdk_token(acct))
        recv_until(ws, _type("subscribed/account_all_orders"))
        statuses = set()
        deadline = time.monotonic() + 20
        while not {"filled", "canceled"} & statuses and time.monotonic() < deadline:
            upd = recv_until(ws, _type("update/account_all_orders"), timeout=20)
            statuses |= {o["status"] for market in upd["orders"].values() for o in market}
        assert {"filled", "canceled", "canceled-expired"} & statuses


def test_trade_and_step_push_at_once_while_paused(simulator) -> None:
    ctl = simulator.control
    ctl.pause()
    idx = ctl.accounts()[0]["account_index"]
    with connect(simulator.ws_url) as ws:
        recv_until(ws, _type("connected"))
        _sub(ws, f"account_all/{idx}")
        _sub(ws, f"user_stats/{idx}")
        recv_until(ws, _type("subscribed/user_stats"))
        t0 = time.monotonic()
        ctl.trade(idx, 0, "0.5", is_ask=True)
        upd = recv_until(ws, _type("update/account_all"), timeout=2)
        assert upd["trades"]["0"][0]["size"] == "0.5000"
        stats = recv_until(ws, _type("update/user_stats"), timeout=2)["stats"]
        assert time.monotonic() - t0 < 1.0
        assert stats["portfolio_value"] == ctl.state(idx)["account"]["total_asset_value"]
        ctl.step()
        recv_until(ws, _type("update/account_all"), timeout=2)


@pytest.mark.slow  # waits out ping and idle windows (~4 s)
def test_server_ping_client_activity_and_idle_close(simulator_factory) -> None:
    sim = simulator_factory(ws_ping_s=0.2, ws_idle_s=1.0)
    with connect(sim.ws_url, ping_interval=None) as ws:
        recv_until(ws, _type("connected"))
        end = time.monotonic() + 1.5  # longer than the idle limit, kept alive by our pongs / protocol pings
        while time.monotonic() < end:
            recv_until(ws, _type("ping"), timeout=1)
            ws.send(json.dumps({"type": "pong"}))
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            assert ws.ping().wait(1)  # WS-protocol pings count as client activity too
            recv_until(ws, _type("ping"), timeout=1)
        with pytest.raises(ConnectionClosed) as info:  # now silent: closed after ~1 s
            recv_until(ws, lambda f: False, timeout=3)
        assert info.value.rcvd is not None  # a proper close frame, not a drop


def test_geo_block_refuses_upgrade_unless_readonly(simulator_factory) -> None:
    sim = simulator_factory(geo_block=True)
    with pytest.raises(InvalidStatus) as info:
        connect(sim.ws_url)
    assert info.value.response.status_code == 400
    assert json.loads(info.value.response.body)["code"] == 20558
    with connect(sim.ws_url + "?readonly=true") as ws:
        recv_until(ws, _type("connected"))
    sim.control.geo_block(False)
    with connect(sim.ws_url) as ws:
        recv_until(ws, _type("connected"))
    assert sim.control.counters()["ws"]["refused_upgrades"] == 1


def test_account_all_trades_and_positions_channels(simulator) -> None:
    """The two channels the seed project subscribes to: Lighter's shapes, public, and pushed on a trade with the
    volume fields moved by exactly the trade's USD value."""
    ctl = simulator.control
    ctl.pause()
    idx = ctl.accounts()[0]["account_index"]
    with connect(simulator.ws_url) as ws:
        recv_until(ws, _type("connected"))
        _sub(ws, f"account_all_trades/{idx}")
        _sub(ws, f"account_all_positions/{idx}")
        _sub(ws, f"account_all/{idx}")
        snap = recv_until(ws, _type("subscribed/account_all_trades"))
        assert snap["channel"] == f"account_all_trades:{idx}" and isinstance(snap["trades"], dict)
        volumes = ("daily_volume", "weekly_volume", "monthly_volume", "total_volume")
        assert all(isinstance(snap[k], int | float) and not isinstance(snap[k], bool) for k in volumes)
        positions = recv_until(ws, _type("subscribed/account_all_positions"))
        full = recv_until(ws, _type("subscribed/account_all"))
        assert positions["channel"] == f"account_all_positions:{idx}" and positions["positions"] == full["positions"]
        assert {"shares", "last_funding_round", "last_funding_discount", "timestamp"} <= positions.keys()

        filled = ctl.trade(idx, 0, "0.5", is_ask=False)["account"]
        seen: dict[str, dict] = {}
        recv_until(ws, lambda f: seen.setdefault(f["type"], f) is not None and {
            "update/account_all_trades", "update/account_all_positions"} <= seen.keys(), timeout=2)
        update = seen["update/account_all_trades"]
        trade = update["trades"]["0"][0]
        assert trade["size"] == "0.5000" and trade["bid_account_id"] == idx and trade["trade_id_str"]
        usd = Decimal(trade["size"]) * Decimal(trade["price"])
        for key in volumes:
            assert Decimal(str(update[key])) - Decimal(str(snap[key])) == usd, key
        moved = seen["update/account_all_positions"]["positions"]["0"]
        assert moved == next(p for p in filled["positions"] if p["market_id"] == 0)
    # A snapshot taken now lists the fill, as the worker's resubscription after a reconnect would see it.
    with connect(simulator.ws_url) as again:
        recv_until(again, _type("connected"))
        _sub(again, f"account_all_trades/{idx}")
        listed = recv_until(again, _type("subscribed/account_all_trades"))["trades"]["0"]
        assert trade["trade_id"] in {t["trade_id"] for t in listed}
