"""Done-when: the official lighter-sdk, unchanged, against our web app fed by the real worker from the simulator."""
from __future__ import annotations

import asyncio
import json
import queue
import threading
from typing import Any

import lighter
import pytest
import requests
from lighter.exceptions import ApiException, BadRequestException, UnauthorizedException
from lighter.models import DetailedAccounts, Orders, ResultCode

from core.settings import from_env
from core.store import Store
from tests.app.compat.conftest import TOKEN, Stack, wait_for
from tests.fixtures.web import run_web

MIN_SIZE = {0: "0.0050", 1: "0.00020", 2: "0.050", 3: "10"}  # the simulator's markets (simulator/markets.py)


def _client(stack: Stack, token: str | None = TOKEN) -> lighter.ApiClient:
    """What a bot writes: only the host changes; our token rides in a default header the SDK supports."""
    config = lighter.Configuration(host=stack.web.url)
    if token is None:
        return lighter.ApiClient(config)
    return lighter.ApiClient(config, header_name="Authorization", header_value=token)


def _run(coro_factory: Any) -> Any:
    async def main() -> Any:
        return await coro_factory()
    return asyncio.run(main())


def _sdk(stack: Stack, call: Any, token: str | None = TOKEN) -> Any:
    async def go() -> Any:
        async with _client(stack, token) as client:
            return await call(client)
    return _run(go)


def _ours_stable(stack: Stack, index: int, read: Any) -> tuple[dict, Any]:
    """Our body and an SDK read taken between two identical reads of ours (the market keeps moving)."""
    def attempt() -> tuple[dict, Any] | None:
        before = stack.ours(index)
        result = read()
        after = stack.ours(index)
        return (after, result) if before["seq"] == after["seq"] else None
    return wait_for(attempt, message="a quiet moment between two of our reads")


def test_status_account_and_active_orders_match_our_api(stack: Stack) -> None:
    index = stack.accounts[0]["account_index"]
    status = _sdk(stack, lambda c: lighter.RootApi(c).status())
    assert status.status == 200 and status.timestamp > 0

    ours, got = _ours_stable(stack, index, lambda: _sdk(
        stack, lambda c: lighter.AccountApi(c).account(by="index", value=str(index))))
    assert isinstance(got, DetailedAccounts) and got.total == 1
    account = got.accounts[0]
    sections = ours["sections"]
    assert account.index == account.account_index == index
    assert account.collateral == sections["summary"]["data"]["collateral"]
    assert account.l1_address == stack.accounts[0]["l1_address"]
    assert [p.to_dict() for p in account.positions] == sections["positions"]["data"]

    ours, got = _ours_stable(stack, index, lambda: _sdk(
        stack, lambda c: lighter.OrderApi(c).account_active_orders(authorization=TOKEN, account_index=index)))
    assert isinstance(got, Orders)
    assert [o.to_dict() for o in got.orders] == sections_orders(ours)


def sections_orders(ours: dict) -> list[dict]:
    return ours["sections"]["orders"]["data"]


def test_bodies_pass_strict_validation(stack: Stack) -> None:
    """The SDK deserialises without validating (§2.5), so check the raw bodies with the strict models too."""
    index = stack.accounts[0]["account_index"]
    auth = {"Authorization": TOKEN}
    body = requests.get(f"{stack.web.url}/api/v1/account", params={"by": "index", "value": index},
                        headers=auth, timeout=5)
    DetailedAccounts.model_validate_json(body.content, strict=True)
    assert body.headers["X-RateLimit-Limit"] == "10000"  # under the web's limiter like every /api route
    orders = requests.get(f"{stack.web.url}/api/v1/accountActiveOrders", params={"account_index": index,
                          "auth": TOKEN}, timeout=5)
    Orders.model_validate_json(orders.content, strict=True)
    by_owner = requests.get(f"{stack.web.url}/api/v1/account", headers=auth, timeout=5,
                            params={"by": "l1_address", "value": stack.accounts[0]["l1_address"]}).json()
    assert [a["index"] for a in by_owner["accounts"]] == [index]
    page = requests.get(stack.web.url + "/", headers={"Accept": "text/html"}, timeout=5)
    assert page.headers["Content-Type"].startswith("text/html")  # the dashboard stays where it was


@pytest.mark.parametrize("token, exception, code", [
    (None, BadRequestException, 20001), ("wrong", UnauthorizedException, 20013)])
def test_lighter_errors_through_the_sdk(stack: Stack, token: str | None, exception: type, code: int) -> None:
    index = stack.accounts[0]["account_index"]
    with pytest.raises(exception) as caught:
        _sdk(stack, lambda c: lighter.OrderApi(c).account_active_orders(authorization=token or "",
                                                                          account_index=index), token=None)
    body = caught.value.data if caught.value.data is not None else ResultCode.from_json(
        caught.value.body)
    assert body.code == code


def test_untracked_and_keyless_accounts(stack: Stack) -> None:
    with pytest.raises(BadRequestException) as caught:
        _sdk(stack, lambda c: lighter.AccountApi(c).account(by="index", value="1"))
    assert caught.value.data.code == 21100 and caught.value.data.message == "account not found"
    keyless = stack.accounts[1]["account_index"]
    got = _sdk(stack, lambda c: lighter.AccountApi(c).account(by="index", value=str(keyless)))
    assert got.accounts[0].index == keyless
    with pytest.raises(BadRequestException) as caught:  # unknown orders are never "no orders"
        _sdk(stack, lambda c: lighter.OrderApi(c).account_active_orders(authorization=TOKEN, account_index=keyless))
    assert caught.value.data.code == 20001


def test_ws_client_sees_what_our_api_serves(stack: Stack) -> None:
    """WsClient(ws_url=...) gets account_all frames; after a simulated trade its positions equal ours."""
    index = stack.accounts[0]["account_index"]
    updates: queue.Queue = queue.Queue()
    client = lighter.WsClient(ws_url=f"{stack.stream_url}?auth={TOKEN}", account_ids=[index],
                              on_account_update=lambda account_id, message: updates.put((account_id, message)))
    runner = threading.Thread(target=client.run, daemon=True)
    runner.start()
    latest: dict[str, Any] = {}

    def drain(timeout: float) -> None:
        account_id, message = updates.get(timeout=timeout)
        assert account_id == str(index)  # the SDK recovers the id from "account_all:{index}"
        latest.update(message)

    try:
        drain(15)
        assert latest["type"] == "subscribed/account_all" and latest["account"] == index
        before = {m: p["position"] for m, p in latest["positions"].items()}
        market = int(next(iter(latest["positions"])))
        stack.sim.control.trade(index, market, MIN_SIZE[market], is_ask=False)

        def agrees() -> bool:
            ours = {str(p["market_id"]): p for p in stack.ours(index)["sections"]["positions"]["data"]}
            moved = {m: p["position"] for m, p in ours.items()} != before
            return moved and latest.get("type") == "update/account_all" and all(
                latest["positions"].get(m) == p for m, p in ours.items())
        wait_for(agrees, timeout=20, message="WsClient positions equal to ours after a trade", idle=drain)
    finally:
        if client.ws is not None:
            client.ws.close()
        runner.join(timeout=5)


def test_rate_limited_like_every_api_route(tmp_path: Any) -> None:
    """A web of its own with a tiny budget: the 4th request is Lighter's 429, with the limiter's headers."""
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "3/minute"}
    Store.from_settings(from_env(env)).set_tracked([])  # a worker wrote its (empty) list: account 1 is untracked
    with run_web(env) as web:
        url = f"{web.url}/api/v1/account"
        statuses = [requests.get(url, params={"by": "index", "value": "1"}, timeout=5).status_code for _ in range(3)]
        assert statuses == [400, 400, 400]  # untracked: Lighter's 21100, and counted
        config = lighter.Configuration(host=web.url)

        async def call() -> Any:
            async with lighter.ApiClient(config) as client:
                return await lighter.AccountApi(client).account(by="index", value="1")
        with pytest.raises(ApiException) as caught:
            _run(call)
        assert caught.value.status == 429
        assert json.loads(caught.value.body) == {"code": 23000, "message": "Too Many Requests!"}
        assert int(caught.value.headers["Retry-After"]) > 0
