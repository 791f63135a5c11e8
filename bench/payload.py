"""Synthetic account snapshots (schema 1, about 2 KB) carrying a server-side stamp for latency measurement.

The stamp is `sections.summary.data.bench_stamp_ms` (wall-clock ms, float): set just before the snapshot is
written to the store (ours) or broadcast (reference), read by clients on receipt. Client and server share one
machine, hence one clock.
"""
from __future__ import annotations

import time
from typing import Any

STAMP_KEY = "bench_stamp_ms"
DEFAULT_BYTES = 2048


def _position(market: int, tick: int) -> dict[str, Any]:
    return {"market_id": market, "symbol": f"M{market}", "sign": 1, "position": f"{1 + tick % 7}.000",
            "avg_entry_price": "3012.55", "position_value": f"{3000 + tick % 100}.120000",
            "unrealized_pnl": f"{tick % 50}.100000", "realized_pnl": "0.000000",
            "liquidation_price": "2100.00", "open_order_count": 0, "margin_mode": 0}


def make_snapshot(account_index: int, tick: int, target_bytes: int = DEFAULT_BYTES) -> dict[str, Any]:
    """A snapshot whose JSON is about `target_bytes` long; stamp it with `stamp()` right before sending."""
    summary = {"index": account_index, "account_index": account_index, "collateral": f"{10000 + tick}.000000",
               "available_balance": f"{9000 + tick}.000000", "total_asset_value": f"{10000 + tick}.500000",
               "status": 1, STAMP_KEY: 0.0, "pad": ""}
    snapshot = {"schema": 1, "account_index": account_index, "seq": 0, "prev_seq": None, "written_at": None,
                "as_of": int(time.time() * 1000), "public_only": True,
                "sections": {
                    "summary": {"source": "ws", "as_of": None, "data": summary, "error": None},
                    "positions": {"source": "ws", "as_of": None, "data": [_position(m, tick) for m in (0, 1, 2)],
                                  "error": None},
                    "orders": {"source": None, "as_of": None, "data": None, "error": None},
                    "stats": {"source": "ws", "as_of": None, "data": {"portfolio_value": f"{10000 + tick}.5"},
                              "error": None},
                    "trades": {"source": "ws", "as_of": None, "data": [], "error": None}}}
    import orjson

    size = len(orjson.dumps(snapshot))
    summary["pad"] = "x" * max(0, target_bytes - size)
    return snapshot


def stamp(snapshot: dict[str, Any], now_ms: float | None = None) -> float:
    """Set the stamp (and section ages) to now; returns the stamp."""
    value = time.time() * 1000 if now_ms is None else now_ms
    snapshot["sections"]["summary"]["data"][STAMP_KEY] = value
    for section in snapshot["sections"].values():
        if section["source"]:
            section["as_of"] = int(value)
    snapshot["as_of"] = int(value)
    return value
