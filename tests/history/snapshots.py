"""Builders of store snapshots (schema 1) for history tests: Lighter's rows, only the fields history reads."""
from __future__ import annotations

from typing import Any

from core.snapshot import Snapshot, new_snapshot, now_ms

ACCOUNT = 7


def snap(positions: list[dict[str, Any]] | None = None, orders: list[dict[str, Any]] | None = None,
         trades: list[dict[str, Any]] | None = None, equity: str | None = "1000.000000",
         stats: dict[str, Any] | None = None, account: int = ACCOUNT) -> Snapshot:
    snapshot = new_snapshot(account, public_only=False)
    sections = snapshot["sections"]
    sections["positions"]["data"] = positions
    sections["orders"]["data"] = orders
    sections["trades"]["data"] = trades
    if equity is not None:
        sections["summary"]["data"] = {"total_asset_value": equity, "collateral": "900.000000"}
    sections["stats"]["data"] = stats
    snapshot["as_of"] = now_ms()  # just confirmed by upstream
    return snapshot


def position(market: int, size: str, sign: int = 1, funding: str = "0.000000", upnl: str = "0.000000",
             entry: str = "100.0") -> dict[str, Any]:
    return {"market_id": market, "sign": sign, "position": size, "avg_entry_price": entry,
            "unrealized_pnl": upnl, "realized_pnl": "0.000000", "total_funding_paid_out": funding}


def order(index: int, remaining: str, initial: str = "1.0", market: int = 0, is_ask: bool = False,
          created_at: int = 111, updated_at: int = 222) -> dict[str, Any]:
    return {"order_index": index, "market_index": market, "status": "open", "price": "100.0", "is_ask": is_ask,
            "initial_base_amount": initial, "remaining_base_amount": remaining, "created_at": created_at,
            "updated_at": updated_at}


def trade(trade_id: int, ts: int, *, ask: int = 1, bid: int = ACCOUNT, maker_ask: bool = True, size: str = "0.5",
          price: str = "100.0", ask_id: int = 900, bid_id: int = 901, **extra: Any) -> dict[str, Any]:
    return {"trade_id": trade_id, "timestamp": ts, "market_id": 0, "type": "trade", "size": size, "price": price,
            "ask_account_id": ask, "bid_account_id": bid, "is_maker_ask": maker_ask, "ask_id": ask_id,
            "bid_id": bid_id, "maker_fee": 2, "taker_fee": 5, **extra}
