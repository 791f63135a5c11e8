"""The official lighter-sdk, unchanged, against the simulator."""
from __future__ import annotations

import asyncio

import lighter

from tests.simulator.helpers import sdk_token


async def _rest_calls(base_url: str, acct: dict) -> tuple:
    async with lighter.ApiClient(lighter.Configuration(host=base_url)) as client:
        accounts = await lighter.AccountApi(client).account(by="index", value=str(acct["account_index"]))
        orders = await lighter.OrderApi(client).account_active_orders(
            account_index=acct["account_index"], authorization=sdk_token(acct))
        books = await lighter.OrderApi(client).order_books()
        return accounts, orders, books


def test_sdk_rest_apis(simulator) -> None:
    ctl = simulator.control
    ctl.pause()
    acct = ctl.accounts()[0]
    accounts, orders, books = asyncio.run(asyncio.wait_for(_rest_calls(simulator.base_url, acct), 15))
    truth = ctl.state(acct["account_index"])
    assert accounts.accounts[0].collateral == truth["account"]["collateral"]
    assert [o.order_index for o in orders.orders] == [o["order_index"] for o in truth["orders"]]
    assert {b.symbol for b in books.order_books} >= {"ETH", "BTC"}


def test_sdk_ws_client_gets_account_snapshot_and_updates(simulator) -> None:
    idx = simulator.control.accounts()[0]["account_index"]
    seen: list[str] = []
    done = asyncio.Event()

    def on_account_update(account_id: str, message: dict) -> None:
        assert account_id == str(idx)
        seen.append(message["type"])
        if seen.count("update/account_all") >= 2:
            done.set()

    async def main() -> None:
        client = lighter.WsClient(ws_url=simulator.ws_url, account_ids=[idx], on_account_update=on_account_update)
        task = asyncio.create_task(client.run_async())
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            if client.ws is not None:
                await client.ws.close()  # otherwise the legacy client waits out its close_timeout

    asyncio.run(main())
    assert seen[0] == "subscribed/account_all"
