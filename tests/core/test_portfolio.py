"""core/portfolio against hand-computed cases: long, short, flat, no liquidation price, several markets, stale and
unknown inputs. Every expected figure below was worked out by hand from the inputs (shown in the comments)."""
from __future__ import annotations

from typing import Any

from core.portfolio import Label, account, dec, fills, portfolio, position, text, total
from core.snapshot import new_snapshot, with_freshness

NOW = 1_800_000_000_000
TTL_S = 5.0


def _position(market_id: int, symbol: str, sign: int, size: str, entry: str, value: str, upnl: str, rpnl: str,
              liq: str, imf: str) -> dict[str, Any]:
    return {"market_id": market_id, "symbol": symbol, "sign": sign, "position": size, "avg_entry_price": entry,
            "position_value": value, "unrealized_pnl": upnl, "realized_pnl": rpnl, "liquidation_price": liq,
            "initial_margin_fraction": imf, "margin_mode": 0}


# Lighter's own example (docs/lighter-protocol.md): long 0.5 ETH from 2350.10, valued 1176.05 at the mark.
ETH_LONG = _position(0, "ETH", 1, "0.5000", "2350.10", "1176.050000", "1.000000", "0.000000", "400.12", "5.00")
BTC_SHORT = _position(1, "BTC", -1, "0.10000", "96000.0", "9650.000000", "-50.000000", "0.000000", "120000.0", "2.00")
SOL_FLAT = _position(2, "SOL", 1, "0.000", "0.000", "0.000000", "0.000000", "12.500000", "0", "10.00")
DOGE_NO_LIQ = _position(3, "DOGE", 1, "100", "0.180000", "18.500000", "0.500000", "0.000000", "0", "10.00")


def _body(index: int, summary: dict | None, positions: list | None, as_of: int = NOW, volume: dict | None = None,
          trades: list | None = None, orders: list | None = None) -> Any:
    snap = new_snapshot(index, public_only=False)
    snap["as_of"] = as_of
    for name, data in (("summary", summary), ("positions", positions), ("volume", volume), ("trades", trades),
                       ("orders", orders)):
        if data is not None:
            snap["sections"][name].update(source="ws", as_of=as_of, data=data)
    return with_freshness(snap, TTL_S, NOW)


ACCOUNT_A = {"total_asset_value": "1001.000000", "collateral": "1000.000000", "available_balance": "950.123456"}
ACCOUNT_B = {"total_asset_value": "5000.000000", "collateral": "5049.500000", "available_balance": "4000.000000"}


def test_long_position() -> None:
    p = position(ETH_LONG)
    assert p is not None
    assert p["side"] == "long" and p["size"] == "0.5000" and p["notional"] == "1176.050000"
    assert p["mark_price"] == "2352.10"                      # 1176.05 / 0.5, at the entry's 2 decimals
    assert p["liquidation_price"] == "400.12"
    assert p["liquidation_distance_pct"] == "82.99"          # (2352.10 - 400.12) / 2352.10 = 82.9888…%
    assert p["margin_used"] == "58.802500"                   # 1176.05 × 5.00%
    assert (p["size_decimals"], p["price_decimals"]) == (4, 2)


def test_short_position() -> None:
    p = position(BTC_SHORT)
    assert p is not None
    assert p["side"] == "short" and p["mark_price"] == "96500.0"  # 9650 / 0.1
    assert p["liquidation_distance_pct"] == "24.35"          # (120000 - 96500) / 96500 = 24.3523…%: above the mark
    assert p["unrealized_pnl"] == "-50.000000" and p["margin_used"] == "193.000000"  # 9650 × 2.00%


def test_flat_is_no_position_and_zero_liquidation_is_none() -> None:
    assert position(SOL_FLAT) is None                        # Lighter lists flat markets: not a position
    p = position(DOGE_NO_LIQ)
    assert p is not None and p["liquidation_price"] is None and p["liquidation_distance_pct"] is None
    assert p["mark_price"] == "0.185000" and p["margin_used"] == "1.850000"


def test_account_figures_over_several_markets() -> None:
    b = account(_body(22, ACCOUNT_B, [BTC_SHORT, SOL_FLAT, DOGE_NO_LIQ]), Label("hedge", 2))
    assert (b["name"], b["group"], b["stale"]) == ("hedge", 2, False)
    assert b["equity"] == "5000.000000" and b["collateral"] == "5049.500000"
    assert dec(b["unrealized_pnl"]) == dec("-49.5")          # -50 + 0.5
    assert dec(b["realized_pnl"]) == dec("12.5")             # the flat SOL row's realized PnL still counts
    assert dec(b["notional"]) == dec("9668.5")               # 9650 + 18.5
    assert dec(b["margin_used"]) == dec("194.85")            # 193 + 1.85
    assert b["margin_usage_pct"] == "3.90"                   # 194.85 / 5000 = 3.897%
    assert b["leverage"] == "1.93"                           # 9668.5 / 5000 = 1.9337
    assert b["worst_liquidation_distance_pct"] == "24.35"    # DOGE has none; BTC's is the only one
    assert [p["symbol"] for p in b["positions"]] == ["BTC", "DOGE"] and b["position_count"] == 2


def test_total_is_exact_and_ratios_come_from_sums() -> None:
    body = portfolio([_body(11, ACCOUNT_A, [ETH_LONG]), _body(22, ACCOUNT_B, [BTC_SHORT, SOL_FLAT, DOGE_NO_LIQ])],
                     {11: Label("main", 1), 22: Label("hedge", 2)}, NOW)
    assert [a["name"] for a in body["accounts"]] == ["main", "hedge"]  # the order given: configuration order
    t = body["total"]
    assert t["equity"] == "6001.000000" and t["available_balance"] == "4950.123456"
    assert dec(t["unrealized_pnl"]) == dec("-48.5") and dec(t["realized_pnl"]) == dec("12.5")
    assert dec(t["margin_used"]) == dec("253.6525")          # 58.8025 + 194.85
    assert t["margin_usage_pct"] == "4.23"                   # 253.6525 / 6001 = 4.2268% (not 5.87 + 3.90)
    assert t["leverage"] == "1.81"                           # 10844.55 / 6001 = 1.8071
    assert t["worst_liquidation_distance_pct"] == "24.35"
    assert t["stale"] is False and t["stale_accounts"] == [] and t["age_ms"] == 0 and t["position_count"] == 3


def test_volumes_sum_exactly_from_json_numbers() -> None:
    a = _body(11, ACCOUNT_A, [], volume={"daily_volume": 0.1, "weekly_volume": 1.5, "monthly_volume": 2,
                                         "total_volume": 1e3})
    b = _body(22, ACCOUNT_B, [], volume={"daily_volume": 0.2, "weekly_volume": 2.25, "monthly_volume": 3,
                                         "total_volume": 2e3})
    t = total([account(a, Label(None, None)), account(b, Label(None, None))])
    assert t["volume_24h"] == "0.3"                          # floats would give 0.30000000000000004
    assert (t["volume_7d"], t["volume_30d"]) == ("3.75", "5")
    assert dec(t["volume_total"]) == 3000


def test_unknown_is_none_and_propagates() -> None:
    empty = account(_body(33, None, None), Label(None, None))
    assert empty["equity"] is None and empty["unrealized_pnl"] is None and empty["position_count"] is None
    assert empty["volume_24h"] is None and empty["leverage"] is None
    no_positions = account(_body(11, ACCOUNT_A, []), Label(None, None))
    assert no_positions["unrealized_pnl"] == "0" and no_positions["leverage"] == "0.00"  # known flat: zero
    t = total([no_positions, empty])
    assert t["equity"] is None and t["unrealized_pnl"] is None  # a partial sum would understate the book
    assert t["volume_24h"] is None
    assert total([])["equity"] is None and total([])["stale"] is True


def test_staleness_propagates_with_the_oldest_age() -> None:
    fresh = account(_body(11, ACCOUNT_A, [ETH_LONG], as_of=NOW - 1_000), Label("main", 1))
    old = account(_body(22, ACCOUNT_B, [BTC_SHORT], as_of=NOW - 60_000), Label("hedge", 1))
    assert fresh["stale"] is False and old["stale"] is True
    t = total([fresh, old])
    assert t["stale"] is True and t["stale_accounts"] == [22] and t["age_ms"] == 60_000
    assert t["equity"] == "6001.000000"                       # still summed: stale is flagged, not hidden


def test_negative_zero_and_equity_zero() -> None:
    assert text(dec("-0.000")) == "0.000"
    broke = account(_body(11, {**ACCOUNT_A, "total_asset_value": "0.000000"}, [ETH_LONG]), Label(None, None))
    assert broke["margin_usage_pct"] is None and broke["leverage"] is None  # undefined, never a division error


def test_recent_fills_across_accounts() -> None:
    def trade(tid: int, ts: int, ask: int, bid: int) -> dict:
        return {"trade_id": tid, "trade_id_str": str(tid), "market_id": 0, "size": "0.1000", "price": "2350.00",
                "usd_amount": "235.000000", "timestamp": ts, "ask_account_id": ask, "bid_account_id": bid}

    a = _body(11, ACCOUNT_A, [], trades=[trade(3, 300, 11, 1), trade(1, 100, 1, 11)])
    b = _body(22, ACCOUNT_B, [], trades=[trade(2, 200, 1, 22)])
    out = fills([a, b], {11: Label("main", 1)}, limit=2)
    assert [(f["trade_id"], f["account_index"], f["side"]) for f in out] == [("3", 11, "sell"), ("2", 22, "buy")]
    assert out[0]["name"] == "main" and out[1]["name"] is None
