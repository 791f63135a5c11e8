"""Render model state into Lighter's JSON shapes (pure). Default output passes the SDK's strict validation."""
from __future__ import annotations

from decimal import Decimal

from .accounts import Account, Metrics, Order, Position, liquidation_price, metrics
from .markets import MARKETS, MARKETS_BY_ID, fmt, order_book_entry, usdc
from .model import Fill, Model

EMPTY_POOL_INFO = {
    "status": 0, "operator_fee": "0", "min_operator_share_rate": "0", "total_shares": 0,
    "operator_shares": 0, "annual_percentage_yield": 0, "daily_returns": [], "share_prices": [],
    "sharpe_ratio": 0, "strategies": [],
}


def position_json(pos: Position, acct: Account, model: Model, m: Metrics | None = None) -> dict:
    """An AccountPosition row; the same row is used in REST and in account_all frames."""
    spec = MARKETS_BY_ID[pos.market_id]
    mark = model.marks[pos.market_id]
    m = m or metrics(acct, model.marks)
    orders = [o for o in acct.orders.values() if o.market_id == pos.market_id]
    return {
        "market_id": pos.market_id,
        "symbol": spec.symbol,
        "initial_margin_fraction": fmt(spec.initial_margin_fraction, 2),
        "open_order_count": len(orders),
        "pending_order_count": 0,
        "position_tied_order_count": 0,
        "sign": -1 if pos.size < 0 else 1,
        "position": spec.size(abs(pos.size)),
        "avg_entry_price": spec.price(pos.avg_entry),
        "position_value": usdc(abs(pos.size) * mark),
        "unrealized_pnl": usdc(pos.unrealized(mark)),
        "realized_pnl": usdc(pos.realized_pnl),
        "liquidation_price": spec.price(liquidation_price(pos, spec, mark, m)),
        "total_funding_paid_out": usdc(pos.funding_paid),
        "margin_mode": 0,
        "allocated_margin": usdc(Decimal(0)),
        "total_discount": usdc(Decimal(0)),
        "margin_set_flag": 0,
    }


def detailed_account(acct: Account, model: Model) -> dict:
    """One DetailedAccount in the strict-valid shape (see shapes.lenient for the live-like one)."""
    m = metrics(acct, model.marks)
    positions = [position_json(p, acct, model, m) for _, p in sorted(acct.positions.items())]
    body = {
        "code": 0, "account_type": 0, "account_trading_mode": 0,
        "index": acct.index, "account_index": acct.index, "l1_address": acct.l1_address,
        "cancel_all_time": 0, "total_order_count": len(acct.orders), "total_isolated_order_count": 0,
        "pending_order_count": 0, "available_balance": usdc(m.available_balance), "status": 1,
        "collateral": usdc(acct.collateral), "name": "", "description": "", "can_invite": False,
        "referral_points_percentage": "", "positions": positions,
        "assets": [{"symbol": "USDC", "asset_id": 3, "balance": usdc(acct.collateral),
                    "locked_balance": usdc(Decimal(0)), "margin_balance": usdc(acct.collateral),
                    "margin_mode": "enabled", "multiplier": "1"}],
        "total_asset_value": usdc(m.total_asset_value), "cross_asset_value": usdc(m.total_asset_value),
        "pool_info": dict(EMPTY_POOL_INFO), "shares": [], "created_at": acct.created_at,
        "transaction_time": acct.transaction_time_us, "pending_unlocks": [], "approved_integrators": [],
        "can_rfq": False, "cross_initial_margin_requirement": usdc(m.initial_margin),
        "cross_maintenance_margin_requirement": usdc(m.maintenance_margin),
        "can_rfq_market_ids": [], "metadata": {"color": ""}, "agent_enabled": False, "bo_positions": [],
    }
    return body


def accounts_response(accts: list[Account], model: Model) -> dict:
    return {"code": 200, "total": len(accts), "next_cursor": "",
            "accounts": [detailed_account(a, model) for a in accts]}


def order_json(order: Order, owner: int) -> dict:
    """One Order exactly as accountActiveOrders and account_all_orders carry it."""
    spec = MARKETS_BY_ID[order.market_id]
    return {
        "order_index": order.order_index, "client_order_index": order.client_order_index,
        "order_id": str(order.order_index), "client_order_id": str(order.client_order_index),
        "market_index": order.market_id, "owner_account_index": owner,
        "initial_base_amount": spec.size(order.initial), "price": spec.price(order.price),
        "nonce": order.nonce, "remaining_base_amount": spec.size(order.remaining),
        "is_ask": order.is_ask, "base_size": int(order.initial / spec.lot),
        "base_price": int(order.price / spec.tick), "filled_base_amount": spec.size(order.filled),
        "filled_quote_amount": usdc(order.filled_quote), "side": "sell" if order.is_ask else "buy",
        "type": order.order_type, "time_in_force": order.time_in_force, "reduce_only": False,
        "trigger_price": spec.price(Decimal(0)), "order_expiry": order.expiry_ms, "status": order.status,
        "trigger_status": "na", "trigger_time": 0, "parent_order_index": 0, "parent_order_id": "0",
        "to_trigger_order_id_0": "0", "to_trigger_order_id_1": "0", "to_cancel_order_id_0": "0",
        "block_height": order.block_height, "timestamp": order.created_ms, "created_at": order.created_ms,
        "updated_at": order.updated_ms, "transaction_time": order.transaction_time_us,
        "integrator_fee_collector_index": "0", "integrator_maker_fee": "0", "integrator_taker_fee": "0",
        "order_flags": 0, "order_version": 0, "market_symbol": spec.symbol, "market_kind": "perps",
    }


def orders_response(acct: Account, market_id: int | None) -> dict:
    return {"code": 200, "orders": [order_json(o, acct.index) for o in acct.active_orders(market_id)]}


def order_books_response(model: Model, market_id: int | None) -> dict:
    specs = [s for s in MARKETS if market_id is None or s.market_id == market_id]
    return {"code": 200, "order_books": [order_book_entry(s, model.open_interest(s.market_id)) for s in specs]}


def user_stats(acct: Account, model: Model) -> dict:
    """The `stats` object of user_stats frames; portfolio_value equals REST total_asset_value."""
    m = metrics(acct, model.marks)
    tav = m.total_asset_value
    six = {
        "collateral": usdc(acct.collateral),
        "portfolio_value": usdc(tav),
        "leverage": fmt(m.position_value / tav if tav > 0 else Decimal(0), 2),
        "available_balance": usdc(m.available_balance),
        "margin_usage": fmt(m.initial_margin * 100 / tav if tav > 0 else Decimal(0), 2),
        "buying_power": usdc(m.available_balance * 10),
    }
    return {**six, "account_trading_mode": 0, "cross_stats": dict(six), "total_stats": dict(six)}


def trade_json(fill: Fill) -> dict:
    """A Trade as account_all updates carry it; the counterparty is an anonymous market maker."""
    spec = MARKETS_BY_ID[fill.market_id]
    maker = 1  # the simulated liquidity provider's account index
    ask_acct, bid_acct = (fill.account_index, maker) if fill.is_ask else (maker, fill.account_index)
    own, other = fill.order_index, fill.order_index + 1
    ask_id, bid_id = (own, other) if fill.is_ask else (other, own)
    return {
        "trade_id": fill.trade_id, "trade_id_str": str(fill.trade_id), "tx_hash": f"{fill.trade_id:064x}",
        "type": "trade", "market_id": fill.market_id, "size": spec.size(fill.size),
        "price": spec.price(fill.price), "usd_amount": usdc(fill.size * fill.price),
        "ask_id": ask_id, "ask_id_str": str(ask_id), "bid_id": bid_id, "bid_id_str": str(bid_id),
        "ask_account_id": ask_acct, "bid_account_id": bid_acct, "is_maker_ask": not fill.is_ask,
        "block_height": fill.block_height, "timestamp": fill.timestamp_ms, "taker_fee": 0, "maker_fee": 0,
        "transaction_time": fill.timestamp_ms * 1000,
    }


def status_response(now_s: int) -> dict:
    return {"status": 200, "network_id": 1, "timestamp": now_s}
