"""The seeded living market: marks random-walk, orders are placed/filled/cancelled (pure; time is passed in).

One `Model` feeds both REST and WebSocket views, so they agree at any instant. Every mutation
returns a `Changes` record that the I/O layer turns into WebSocket pushes.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field, replace
from decimal import Decimal

from .accounts import ORDER_INDEX_BASE, ZERO, Account, Order, apply_fill
from .book import BookState
from .markets import MARKETS, MARKETS_BY_ID, MarketSpec

MAX_ACTIVE_ORDERS = 6
RECENT_FILLS_KEPT = 50                   # per account: what an account_all_trades snapshot lists
VOLUME_WINDOW_MS = 30 * 86_400_000       # the longest volume window (30 days); older fills only count in total
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Fill:
    """One execution against a simulated account, rendered as a Trade in account_all updates."""

    trade_id: int
    market_id: int
    is_ask: bool  # the account's side
    size: Decimal
    price: Decimal
    order_index: int
    account_index: int
    block_height: int
    timestamp_ms: int


@dataclass
class Changes:
    """What one model step changed: accounts to re-push, orders that changed, fills and book deltas."""

    accounts: set[int] = field(default_factory=set)
    orders: dict[int, list[Order]] = field(default_factory=dict)  # account -> changed order copies
    fills: dict[int, list[Fill]] = field(default_factory=dict)
    books: dict[int, dict] = field(default_factory=dict)  # market -> delta payload

    def order_changed(self, acct: int, order: Order) -> None:
        self.accounts.add(acct)
        self.orders.setdefault(acct, []).append(replace(order))


class Model:
    """All simulated truth. Deterministic for a given seed and sequence of calls."""

    def __init__(self, seed: int, n_accounts: int, now_ms: int) -> None:
        self.rng = random.Random(seed)
        self.marks: dict[int, Decimal] = {m.market_id: m.start_price for m in MARKETS}
        self.block_height = 227_535_532
        self.next_order_index = ORDER_INDEX_BASE + self.rng.randrange(10**9)
        self.next_client_index = 1
        self.next_nonce = ORDER_INDEX_BASE + self.rng.randrange(10**9)
        self.next_trade_id = 10**10 + self.rng.randrange(10**9)
        self.books = {m.market_id: BookState(m) for m in MARKETS}
        self.accounts: dict[int, Account] = {}
        # Per account: newest fills (oldest first) and (timestamp_ms, USD) of each fill in the last 30 days.
        self.fills: dict[int, list[Fill]] = {}
        self.volume_log: dict[int, list[tuple[int, Decimal]]] = {}
        self.total_volume: dict[int, Decimal] = {}
        for idx in sorted(self.rng.sample(range(100_000, 999_999), n_accounts)):
            self.accounts[idx] = self._new_account(idx, now_ms)
        for book in self.books.values():
            book.regenerate(self.rng, self.marks[book.spec.market_id], now_ms)

    # ----- construction -------------------------------------------------------------------
    def _new_account(self, idx: int, now_ms: int) -> Account:
        rng = self.rng
        key = f"{rng.getrandbits(320):080x}"
        # The public key cannot be derived without Lighter's Go signer; a stable digest stands in for it.
        pub = hashlib.blake2b(bytes.fromhex(key), digest_size=40).hexdigest()
        acct = Account(
            index=idx,
            l1_address=f"0x{rng.getrandbits(160):040x}",
            api_key_index=rng.randint(4, 12),
            private_key="0x" + key,
            public_key="0x" + pub,
            collateral=Decimal(rng.randint(2_000_00, 50_000_00)) / 100,
            created_at=now_ms // 1000 - rng.randint(86_400, 400 * 86_400),
        )
        for spec in rng.sample(MARKETS, rng.randint(1, 3)):
            size = spec.min_base_amount * rng.randint(5, 200) * rng.choice((1, -1))
            entry = self.marks[spec.market_id] * (1 + Decimal(rng.randint(-200, 200)) / 10_000)
            pos = acct.position(spec.market_id)
            pos.size, pos.avg_entry = size, entry.quantize(spec.tick)
        for _ in range(rng.randint(1, 3)):
            self._place(acct, now_ms, Changes())
        return acct

    # ----- public operations --------------------------------------------------------------
    def tick(self, now_ms: int) -> Changes:
        """Advance one step: walk every mark, then run each account's order lifecycle."""
        ch = Changes()
        self.block_height += 1
        for spec in MARKETS:
            self._walk(spec)
        for acct in self.accounts.values():
            if any(p.size != 0 for p in acct.positions.values()):
                ch.accounts.add(acct.index)  # PnL moved with the marks
            self._lifecycle(acct, now_ms, ch)
        for mid, book in self.books.items():
            ch.books[mid] = book.regenerate(self.rng, self.marks[mid], now_ms)
        return ch

    def trade(self, index: int, market_id: int, size: Decimal, is_ask: bool, now_ms: int) -> Changes:
        """Fill a market order for `index` immediately at the mark (the control API's 'move a position')."""
        acct = self.accounts[index]
        spec = MARKETS_BY_ID[market_id]
        size = size.quantize(spec.lot)
        if size <= 0:
            raise ValueError("size must be at least one lot")
        ch = Changes()
        self.block_height += 1
        order = self._new_order(acct, spec, is_ask, self.marks[market_id], size, now_ms)
        order.order_type, order.time_in_force = "market", "immediate-or-cancel"
        self._fill(acct, order, size, now_ms, ch)
        acct.orders.pop(order.order_index, None)
        return ch

    def open_interest(self, market_id: int) -> Decimal:
        longs = sum((p.size for a in self.accounts.values() for p in a.positions.values()
                     if p.market_id == market_id and p.size > 0), ZERO)
        return longs

    def volumes(self, index: int, now_ms: int) -> dict[str, Decimal]:
        """The account's traded USD over 24 h, 7 d, 30 d and in total (account_all_trades' volume fields)."""
        log = [(t, usd) for t, usd in self.volume_log.get(index, []) if now_ms - t < VOLUME_WINDOW_MS]
        self.volume_log[index] = log

        def since(days: int) -> Decimal:
            return sum((usd for t, usd in log if now_ms - t < days * DAY_MS), ZERO)

        return {"daily_volume": since(1), "weekly_volume": since(7), "monthly_volume": since(30),
                "total_volume": self.total_volume.get(index, ZERO)}

    def account_by_l1(self, address: str) -> list[Account]:
        return [a for a in self.accounts.values() if a.l1_address.lower() == address.lower()]

    # ----- internals ----------------------------------------------------------------------
    def _walk(self, spec: MarketSpec) -> None:
        mark = self.marks[spec.market_id]
        sigma_ticks = float(mark * spec.vol_bp / 10_000 / spec.tick)
        step = round(self.rng.gauss(0.0, sigma_ticks))
        self.marks[spec.market_id] = max(spec.tick * 10, mark + spec.tick * step)

    def _lifecycle(self, acct: Account, now_ms: int, ch: Changes) -> None:
        rng = self.rng
        for order in acct.active_orders():
            mark = self.marks[order.market_id]
            crossed = mark >= order.price if order.is_ask else mark <= order.price
            roll = rng.random()
            if crossed or roll < 0.06:
                lot = MARKETS_BY_ID[order.market_id].lot
                # Crossed orders usually fill completely; otherwise a random number of lots trades.
                part = order.remaining if crossed and roll < 0.6 else lot * rng.randint(1, int(order.remaining / lot))
                self._fill(acct, order, part, now_ms, ch)
            elif roll < 0.10:
                order.status = "canceled-expired" if rng.random() < 0.2 else "canceled"
                order.updated_ms = now_ms
                ch.order_changed(acct.index, order)
            if not order.active:
                acct.orders.pop(order.order_index, None)
        if len(acct.orders) < MAX_ACTIVE_ORDERS and rng.random() < 0.3:
            self._place(acct, now_ms, ch)

    def _place(self, acct: Account, now_ms: int, ch: Changes) -> None:
        rng = self.rng
        spec = rng.choice(MARKETS)
        mark = self.marks[spec.market_id]
        pos = acct.position(spec.market_id) if spec.market_id in acct.positions else None
        # Lean against large positions so sizes stay bounded over long runs.
        heavy = pos is not None and abs(pos.size) * mark > acct.collateral * 2
        is_ask = (pos.size > 0) if heavy else rng.random() < 0.5
        offset = mark * rng.randint(3, 60) / 10_000
        price = (mark + offset if is_ask else mark - offset).quantize(spec.tick)
        size = spec.min_base_amount * rng.randint(1, 20)
        order = self._new_order(acct, spec, is_ask, max(price, spec.tick), size, now_ms)
        ch.order_changed(acct.index, order)

    def _new_order(self, acct: Account, spec: MarketSpec, is_ask: bool, price: Decimal,
                   size: Decimal, now_ms: int) -> Order:
        order = Order(order_index=self.next_order_index, client_order_index=self.next_client_index,
                      market_id=spec.market_id, is_ask=is_ask, price=price, initial=size,
                      nonce=self.next_nonce, created_ms=now_ms, updated_ms=now_ms,
                      expiry_ms=now_ms + 28 * 86_400_000, block_height=self.block_height,
                      transaction_time_us=now_ms * 1000)
        self.next_order_index += 1
        self.next_client_index += 1
        self.next_nonce += 1
        acct.orders[order.order_index] = order
        acct.transaction_time_us = now_ms * 1000
        return order

    def _fill(self, acct: Account, order: Order, size: Decimal, now_ms: int, ch: Changes) -> None:
        if size <= 0:
            return
        spec = MARKETS_BY_ID[order.market_id]
        apply_fill(acct, spec, order.is_ask, size, order.price)
        order.filled += size
        order.filled_quote += (size * order.price).quantize(Decimal("0.000001"))
        order.updated_ms = now_ms
        if order.remaining <= 0:
            order.status = "filled"
        acct.transaction_time_us = now_ms * 1000
        fill = Fill(self.next_trade_id, order.market_id, order.is_ask, size, order.price,
                    order.order_index, acct.index, self.block_height, now_ms)
        self.next_trade_id += 1
        recent = self.fills.setdefault(acct.index, [])
        recent.append(fill)
        del recent[:-RECENT_FILLS_KEPT]
        usd = size * order.price
        self.volume_log.setdefault(acct.index, []).append((now_ms, usd))
        self.total_volume[acct.index] = self.total_volume.get(acct.index, ZERO) + usd
        ch.order_changed(acct.index, order)
        ch.fills.setdefault(acct.index, []).append(fill)
