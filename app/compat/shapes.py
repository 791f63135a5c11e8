"""Pure builders: store snapshots -> Lighter REST bodies (DetailedAccounts, Orders, Status, ResultCode errors).

Principle: relay what Lighter sent verbatim; only add a required key that is missing (or null) so the SDK's strict
`model_validate` passes. Every synthesized value is listed in docs/lighter-compat.md. Nothing here does I/O.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from app.compat.errors import (
    INVALID_L1_ADDRESS,
    INVALID_PARAM,
    ORDERS_NOT_TRACKED,
    ORDERS_UNAVAILABLE,
    LighterError,
    LighterRefusal,
)
from core.snapshot import Snapshot

# DetailedAccount fields Lighter always sends; used only when a key is missing or null in our snapshot.
EMPTY_POOL_INFO: dict[str, Any] = {
    "status": 0, "operator_fee": "0", "min_operator_share_rate": "0", "total_shares": 0, "operator_shares": 0,
    "annual_percentage_yield": 0, "daily_returns": [], "share_prices": [], "sharpe_ratio": 0, "strategies": []}
ACCOUNT_DEFAULTS: dict[str, Any] = {
    "code": 0, "account_type": 0, "l1_address": "", "cancel_all_time": 0, "total_order_count": 0,
    "total_isolated_order_count": 0, "pending_order_count": 0, "available_balance": "0", "status": 1,
    "collateral": "0", "name": "", "description": "", "can_invite": False, "referral_points_percentage": "",
    "assets": [], "total_asset_value": "0", "cross_asset_value": "0", "pool_info": EMPTY_POOL_INFO, "shares": [],
    "created_at": 0, "transaction_time": 0, "can_rfq": False, "cross_initial_margin_requirement": "0",
    "cross_maintenance_margin_requirement": "0", "can_rfq_market_ids": [], "metadata": {"color": ""},
    "agent_enabled": False}
POSITION_DEFAULTS: dict[str, Any] = {
    "symbol": "", "initial_margin_fraction": "0", "open_order_count": 0, "pending_order_count": 0,
    "position_tied_order_count": 0, "sign": 1, "position": "0", "avg_entry_price": "0", "position_value": "0",
    "unrealized_pnl": "0", "realized_pnl": "0", "liquidation_price": "0", "margin_mode": 0,
    "allocated_margin": "0", "total_discount": "0", "margin_set_flag": 0}
ORDER_DEFAULTS: dict[str, Any] = {
    "client_order_index": 0, "client_order_id": "0", "initial_base_amount": "0", "price": "0", "nonce": 0,
    "remaining_base_amount": "0", "base_size": 0, "base_price": 0, "filled_base_amount": "0",
    "filled_quote_amount": "0", "type": "limit", "time_in_force": "good-till-time", "reduce_only": False,
    "trigger_price": "0", "order_expiry": 0, "status": "open", "trigger_status": "na", "trigger_time": 0,
    "parent_order_index": 0, "parent_order_id": "0", "to_trigger_order_id_0": "0", "to_trigger_order_id_1": "0",
    "to_cancel_order_id_0": "0", "block_height": 0, "timestamp": 0, "created_at": 0, "updated_at": 0,
    "transaction_time": 0, "integrator_fee_collector_index": "0", "integrator_maker_fee": "0",
    "integrator_taker_fee": "0", "order_flags": 0, "order_version": 0, "market_symbol": "", "market_kind": "perps"}
_INT = re.compile(r"^-?[0-9]{1,20}$")  # ASCII only: str.isdigit() accepts '²', which int() refuses
# Lighter's `market_type` query values -> Order.market_kind.
MARKET_TYPE_KINDS = {"perp": "perps", "perps": "perps", "spot": "spot", "bo": "bo", "binary_options": "bo"}


def error_body(error: LighterError) -> tuple[dict[str, Any], int]:
    """Lighter's ResultCode body and HTTP status for one of the errors in app/compat/errors.py (400 when the
    error names no status: Lighter's usual one)."""
    return {"code": error.code, "message": error.message}, error.http_status or 400


def _fill(data: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """Copy of `data` with every missing or null key of `defaults` set (existing values stay verbatim)."""
    out = dict(data or {})
    for key, value in defaults.items():
        if out.get(key) is None:
            out[key] = _copy(value)
    return out


def _copy(value: Any) -> Any:
    """Defaults hold lists/dicts: hand each body its own so no caller can mutate the shared template."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def section_data(snapshot: Snapshot, name: str) -> Any:
    """The `data` of one snapshot section, or None when the worker has none yet."""
    section = (snapshot.get("sections") or {}).get(name)
    return None if section is None else section.get("data")


def _from_stats(stats: dict[str, Any] | None) -> dict[str, Any]:
    """DetailedAccount money fields derived from user_stats, for when no REST summary exists yet.

    user_stats' `portfolio_value` is REST's `total_asset_value`; cross_stats' is `cross_asset_value` (§6, §7).
    """
    if not stats:
        return {}
    cross = stats.get("cross_stats") or {}
    derived = {"collateral": stats.get("collateral"), "available_balance": stats.get("available_balance"),
               "total_asset_value": stats.get("portfolio_value"),
               "cross_asset_value": cross.get("portfolio_value", stats.get("portfolio_value")),
               "account_trading_mode": stats.get("account_trading_mode")}
    return {k: v for k, v in derived.items() if v is not None}


def position_rows(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The snapshot's positions as strict AccountPosition dicts (market_id kept, missing fields filled)."""
    rows = section_data(snapshot, "positions") or []
    if isinstance(rows, dict):  # a WS-shaped map keyed by market id: accept it too
        rows = list(rows.values())
    return [_fill(row, POSITION_DEFAULTS) for row in rows if isinstance(row, dict) and "market_id" in row]


def detailed_account(snapshot: Snapshot, active_only: bool = False) -> dict[str, Any]:
    """One strict DetailedAccount from a snapshot: verbatim summary, then stats-derived fields, then defaults."""
    index = int(snapshot["account_index"])
    summary = section_data(snapshot, "summary")
    # The REST summary wins; stats fill what it lacks (the worker writes a partial summary from WS data alone).
    base = {**_from_stats(section_data(snapshot, "stats")), **(summary if isinstance(summary, dict) else {})}
    orders = section_data(snapshot, "orders")
    if base.get("total_order_count") is None and isinstance(orders, list):
        base["total_order_count"] = len(orders)
    base.setdefault("index", index)
    base.setdefault("account_index", index)
    account = _fill(base, ACCOUNT_DEFAULTS)
    account["pool_info"] = _fill(account["pool_info"], EMPTY_POOL_INFO)
    positions = position_rows(snapshot)
    if active_only:
        positions = [p for p in positions if not _is_zero(p.get("position"))]
    account["positions"] = positions
    return account


def detailed_accounts(snapshots: Iterable[Snapshot], active_only: bool = False) -> dict[str, Any]:
    """The `GET /api/v1/account` body: DetailedAccounts with `next_cursor` (the strict model requires it)."""
    accounts = [detailed_account(s, active_only) for s in snapshots]
    return {"code": 200, "total": len(accounts), "next_cursor": "", "accounts": accounts}


def order_row(order: dict[str, Any], account_index: int) -> dict[str, Any]:
    """One strict Order dict; the id twins (`order_id`, `client_order_id`) are derived from the ints if absent."""
    out = _fill(order, ORDER_DEFAULTS)
    if out.get("order_id") is None and out.get("order_index") is not None:
        out["order_id"] = str(out["order_index"])
    if out.get("owner_account_index") is None:
        out["owner_account_index"] = account_index
    if out.get("side") is None:
        out["side"] = "sell" if out.get("is_ask") else "buy"
    return out


def active_orders(snapshot: Snapshot, market_id: int | None = None) -> list[dict[str, Any]] | None:
    """Active orders as strict Order dicts (optionally one market), or None when the snapshot has none yet."""
    orders = section_data(snapshot, "orders")
    if not isinstance(orders, list):
        return None
    index = int(snapshot["account_index"])
    rows = [order_row(o, index) for o in orders if isinstance(o, dict)]
    return [o for o in rows if market_id is None or o.get("market_index") == market_id]


def orders_body(snapshot: Snapshot, market_id: int | None = None,
                market_type: str | None = None) -> tuple[dict[str, Any], int]:
    """The `GET /api/v1/accountActiveOrders` body and status.

    Unknown is never "no orders" (§7): an account without a key, or whose orders were never fetched, gets an error.
    """
    orders = active_orders(snapshot, market_id)
    if orders is None:
        return error_body(ORDERS_NOT_TRACKED if snapshot.get("public_only") else ORDERS_UNAVAILABLE)
    kind = MARKET_TYPE_KINDS.get((market_type or "all").lower())
    if kind is not None:
        orders = [o for o in orders if o.get("market_kind") == kind]
    return {"code": 200, "orders": orders}, 200


def status_body(now_s: int, network_id: int = 1) -> dict[str, Any]:
    """The `GET /` Status body (Lighter's health check; `/api/v1/status` does not exist there)."""
    return {"status": 200, "network_id": network_id, "timestamp": int(now_s)}


def parse_account_query(by: str | None, value: str | None) -> tuple[str, int | str]:
    """Validate `by`/`value` of `/api/v1/account`: ("index", int) or ("l1_address", lowercase str).

    Raises LighterRefusal with Lighter's body for anything else.
    """
    if by == "index":
        index = parse_int(value)
        if index is None or index < 0:
            raise LighterRefusal(INVALID_PARAM)
        return "index", index
    if by == "l1_address":
        text = (value or "").strip()
        if len(text) != 42 or not text.startswith("0x") or not _is_hex(text[2:]):
            raise LighterRefusal(INVALID_L1_ADDRESS)
        return "l1_address", text.lower()
    raise LighterRefusal(INVALID_PARAM)


def parse_int(value: str | None) -> int | None:
    """A query integer within int64 (Lighter's index type), or None; rejects '1.0', ' ', '+-1'..."""
    text = (value or "").strip()
    if not _INT.match(text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


def matches_l1(snapshot: Snapshot, address: str) -> bool:
    """True when the snapshot's (REST) summary names this owner address; WS-only snapshots cannot match."""
    summary = section_data(snapshot, "summary")
    found = summary.get("l1_address") if isinstance(summary, dict) else None
    return isinstance(found, str) and found.lower() == address


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def _is_zero(text: Any) -> bool:
    try:
        return Decimal(str(text)) == 0
    except (InvalidOperation, ValueError):
        return False  # unparseable size: show it rather than hide it
