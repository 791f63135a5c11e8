"""Pure merge of parsed upstream data into one account's snapshot (store schema 1), with change tracking."""
from __future__ import annotations

import copy

from core.snapshot import (
    SCHEMA_VERSION,
    SECTIONS,
    Row,
    Section,
    SectionData,
    Snapshot,
    Source,
    data_digest,
    empty_section,
    new_snapshot,
)
from worker.ingest.parse import sort_orders
from worker.protocol import ACTIVE_STATUSES

TRADES_KEPT = 50  # the trades section keeps the newest this many
# user_stats carries the summary's money fields under these names (portfolio_value is REST's total_asset_value).
STATS_TO_SUMMARY = {"collateral": "collateral", "available_balance": "available_balance",
                    "portfolio_value": "total_asset_value"}


class AccountState:
    """One account's snapshot plus the bookkeeping needed to merge deltas and know what to write.

    `changed` means data or an error flag moved (write now); `confirmed` means only `as_of` moved
    (the writer may coalesce those).
    """

    def __init__(self, account_index: int, public_only: bool, previous: Snapshot | None = None,
                 name: str | None = None, group: int | None = None) -> None:
        usable = previous is not None and previous.get("schema") == SCHEMA_VERSION \
            and previous.get("account_index") == account_index
        self.snapshot: Snapshot = copy.deepcopy(previous) if previous is not None and usable \
            else new_snapshot(account_index, public_only, name, group)
        # The data of the stored version, before this configuration touches it (a relabel is a change of data):
        # the sink keeps that version for as long as the data stays this (worker/sink.py).
        self.stored_digest = data_digest(self.snapshot) \
            if usable and isinstance(self.snapshot.get("version"), int) else None
        self.snapshot["public_only"] = public_only
        # The label is the configuration's: a renamed account is rewritten at once (below, `changed`).
        relabelled = (self.snapshot.get("name"), self.snapshot.get("group")) != (name, group)
        self.snapshot["name"], self.snapshot["group"] = name, group
        for name in SECTIONS:
            self.snapshot["sections"].setdefault(name, empty_section())
        self.orders: dict[int, Row] = {o["order_index"]: o for o in self.rows("orders")}
        # Who raised each section's error flag: a REST failure stays flagged while the WS keeps the data
        # fresh (reconciliation is still broken); only REST's success, which replaces everything, clears it.
        self._flagged_by: dict[str, str] = {}
        # When the WS last pushed data into each section: a REST body requested before that is older.
        self.pushed_at: dict[str, int] = {}
        self.changed = not usable or relabelled
        self.confirmed = False

    @property
    def index(self) -> int:
        return self.snapshot["account_index"]

    def section(self, name: str) -> Section:
        return self.snapshot["sections"][name]

    def rows(self, name: str) -> list[Row]:
        """A list section's rows (positions, orders, trades); none yet, or a malformed resumed section, is []."""
        data = self.section(name)["data"]
        return [row for row in data if isinstance(row, dict)] if isinstance(data, list) else []

    def _object(self, name: str) -> Row:
        """An object section's data (summary, stats), {} when there is none yet."""
        data = self.section(name)["data"]
        return data if isinstance(data, dict) else {}

    def _set(self, name: str, data: SectionData, source: Source, now: int) -> None:
        section = self.section(name)
        clears = section["error"] is not None and (source == "rest" or self._flagged_by.get(name) == source)
        if section["data"] != data or clears:
            self.changed = True
        elif section["source"] != source or section["as_of"] != now:
            self.confirmed = True
        section["data"], section["source"], section["as_of"] = data, source, now
        if clears:
            self._unflag(name)
        if source == "ws":
            self.pushed_at[name] = now
        self._touch(now)

    def _unflag(self, name: str) -> None:
        if self.section(name)["error"] is not None:
            self.section(name)["error"] = None
            self.changed = True
        self._flagged_by.pop(name, None)

    def _newer_push(self, name: str, requested_at: int | None) -> bool:
        """The WS pushed this section after the REST request left: the response is the older view."""
        return requested_at is not None and self.pushed_at.get(name, -1) >= requested_at

    def _touch(self, now: int) -> None:
        stamps = [s["as_of"] for s in self.snapshot["sections"].values() if s["as_of"] is not None]
        self.snapshot["as_of"] = max(stamps) if stamps else None

    def fail(self, name: str, message: str, source: Source) -> None:
        """Flag a section: its last good data and `as_of` stay, so readers see it age into staleness."""
        section = self.section(name)
        self._flagged_by[name] = source
        if section["error"] != message:
            section["error"] = message
            self.changed = True

    def confirm(self, names: tuple[str, ...], now: int) -> None:
        """Upstream vouched that these sections are current without sending new data: a live, healthy
        subscription pushes every change, so silence means "unchanged" whichever source wrote the data.
        A REST error flag stays until REST succeeds again."""
        for name in names:
            section = self.section(name)
            if section["data"] is not None:
                if section["as_of"] is None or section["as_of"] < now:
                    section["as_of"] = now
                    self.confirmed = True
        self._touch(now)

    # -- REST ----------------------------------------------------------------------------------------------
    def apply_account(self, summary: Row, positions: list[Row], now: int, requested_at: int | None = None) -> None:
        """A REST account body. Parts the WS pushed while the request was in flight are newer and stay."""
        if self._newer_push("summary", requested_at):
            current = self._object("summary")
            summary = {**summary, **{k: current[k] for k in STATS_TO_SUMMARY.values() if k in current}}
        self._set("summary", summary, "rest", now)
        if self._newer_push("positions", requested_at):
            self._unflag("positions")  # REST works again, its flag goes; the pushed rows are newer
        else:
            self._set("positions", positions, "rest", now)

    def apply_orders(self, orders: list[Row], source: Source, now: int, requested_at: int | None = None) -> None:
        """A full active-orders list (REST body or WS snapshot) replaces the map, unless WS deltas
        arrived while the REST request was in flight (replacing would roll them back)."""
        if self._newer_push("orders", requested_at):
            self._unflag("orders")
            return
        self.orders = {o["order_index"]: o for o in orders}
        self._set("orders", sort_orders(list(self.orders.values())), source, now)

    # -- WebSocket -----------------------------------------------------------------------------------------
    def apply_order_delta(self, orders: list[Row], now: int) -> None:
        """Updates carry only changed orders; terminal statuses (filled, canceled-*) remove them."""
        for order in orders:
            if order["status"] in ACTIVE_STATUSES:
                self.orders[order["order_index"]] = order
            else:
                self.orders.pop(order["order_index"], None)
        self._set("orders", sort_orders(list(self.orders.values())), "ws", now)

    def apply_positions(self, positions: list[Row], now: int) -> None:
        """account_all frames carry the account's full positions map (rows kept exactly as sent)."""
        self._set("positions", positions, "ws", now)

    def apply_trades(self, trades: list[Row], now: int) -> None:
        """Trades accumulate by id, newest first, up to TRADES_KEPT."""
        known = {t.get("trade_id"): t for t in self.rows("trades")}
        for trade in trades:
            known[trade.get("trade_id")] = trade
        newest = sorted(known.values(), key=lambda t: (t.get("timestamp") or 0, t.get("trade_id") or 0),
                        reverse=True)[:TRADES_KEPT]
        self._set("trades", newest, "ws", now)

    def apply_volume(self, volume: Row, now: int) -> None:
        """account_all_trades' volume fields (24 h, 7 d, 30 d, total), kept verbatim."""
        self._set("volume", volume, "ws", now)

    def apply_stats(self, stats: Row, now: int) -> None:
        self._set("stats", stats, "ws", now)
        summary = dict(self._object("summary"))
        for src, dst in STATS_TO_SUMMARY.items():
            if isinstance(stats.get(src), str):
                summary[dst] = stats[src]
        self._set("summary", summary, "ws", now)

    def take(self) -> Snapshot | None:
        """The snapshot to write if anything moved since the last take, else None."""
        if not (self.changed or self.confirmed):
            return None
        self.changed = self.confirmed = False
        return self.snapshot
