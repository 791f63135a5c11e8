"""The account snapshot: the one object worker, store, web and clients pass around, typed; and its pure helpers.

Why TypedDicts and not dataclasses: a snapshot is JSON everywhere it lives (the store, the change feed, every
REST body and /ws frame). Typed dicts give the checker the schema while the hot paths keep the very object read
from the store (orjson encodes it as it is; no conversion per change, per client or per request).

Snapshot (schema 1), one per tracked account, written only by the worker:
    {"schema": 1, "account_index": int, "seq": int, "prev_seq": int | None, "written_at": ms | None,
     "version": int | None,         # the seq of the last write whose data moved (absent in older snapshots)
     "as_of": ms | None,            # newest upstream confirmation across sections
     "public_only": bool,           # no private key: no active orders
     "name": str | None, "group": int | None,  # from Lighter_{group}_{name}_* (absent in older snapshots)
     "sections": {name: {"source": "ws"|"rest"|None, "as_of": ms|None, "data": ..., "error": str|None}}}
Sections: summary (Lighter DetailedAccount fields except positions, verbatim), positions (AccountPosition list),
orders (active Order list), stats (user_stats), trades (recent trades),
volume (account_all_trades' volume fields). Section data is Lighter's JSON, kept
verbatim: `Row` is one such object.
"""
from __future__ import annotations

import time
from typing import Any, Literal, NotRequired, TypedDict

import orjson

SCHEMA_VERSION = 1
SECTIONS = ("summary", "positions", "orders", "stats", "trades", "volume")
# Sections whose staleness makes the whole account stale: the money and the risk.
VITAL_SECTIONS = ("summary", "positions")

Row = dict[str, Any]                       # one Lighter JSON object (an account summary, a position, an order...)
SectionData = Row | list[Row] | None
Source = Literal["ws", "rest"]


class Section(TypedDict):
    source: Source | None
    as_of: int | None
    data: SectionData
    error: str | None


class _Head(TypedDict):
    """The fields a stored snapshot and a served body share (TypedDicts cannot retype an inherited field)."""

    schema: int
    account_index: int
    seq: int
    prev_seq: int | None
    written_at: int | None
    as_of: int | None
    public_only: bool
    # The configuration's label of the account (`Lighter_{group}_{name}_*`), written by the worker.
    name: NotRequired[str | None]
    group: NotRequired[int | None]
    # The content version: the seq of the last write that changed the data (sections' data and errors, labels).
    # A confirmation (only `as_of`/`source` moved) keeps it, so it names "the same data" across writes, restarts
    # and takeovers (the writer resumes it from the store). See `data_digest`.
    version: NotRequired[int | None]


class Snapshot(_Head):
    sections: dict[str, Section]


class FreshSection(Section):
    """A section as served: with its age and staleness computed at read time."""

    age_ms: int | None
    stale: bool


class AccountBody(_Head):
    """A snapshot as served (REST body, /ws `account`): freshness at top level and per section."""

    sections: dict[str, FreshSection]
    age_ms: int | None
    stale: bool


def now_ms() -> int:
    return int(time.time() * 1000)


def empty_section() -> Section:
    return {"source": None, "as_of": None, "data": None, "error": None}


def new_snapshot(account_index: int, public_only: bool, name: str | None = None,
                 group: int | None = None) -> Snapshot:
    """A snapshot with no data yet (what the worker starts from for an account the store has never seen)."""
    return {"schema": SCHEMA_VERSION, "account_index": account_index, "seq": 0, "prev_seq": None,
            "written_at": None, "as_of": None, "public_only": public_only, "name": name, "group": group,
            "sections": {name: empty_section() for name in SECTIONS}}


# What a confirmation moves: not part of the data the content version stands for.
FRESHNESS_FIELDS = frozenset({"seq", "prev_seq", "written_at", "as_of", "version", "epoch"})
SECTION_FRESHNESS_FIELDS = frozenset({"as_of", "source"})


def data_digest(snapshot: Snapshot) -> bytes:
    """The encoded data of `snapshot` without its freshness: equal digests mean a write only confirmed it."""
    head = {k: v for k, v in snapshot.items() if k not in FRESHNESS_FIELDS and k != "sections"}
    sections = {name: {k: v for k, v in section.items() if k not in SECTION_FRESHNESS_FIELDS}
                for name, section in snapshot.get("sections", {}).items()}
    return orjson.dumps({**head, "sections": sections}, option=orjson.OPT_SORT_KEYS)


def data_version(snapshot: Snapshot | AccountBody) -> int:
    """The content version of a stored or served snapshot (an older writer's, without `version`: its seq)."""
    version = snapshot.get("version")
    return version if isinstance(version, int) else snapshot.get("seq", 0)


def with_freshness(snapshot: Snapshot, ttl_s: float, now: int | None = None) -> AccountBody:
    """Copy of `snapshot` with `age_ms`/`stale` at top level and per section, computed at read time."""
    now = now_ms() if now is None else now
    limit = ttl_s * 1000
    sections: dict[str, FreshSection] = {}
    for name, section in snapshot.get("sections", {}).items():
        as_of = section.get("as_of")
        age = None if as_of is None else max(0, now - as_of)
        sections[name] = {**section, "age_ms": age, "stale": age is None or age > limit}
    as_of = snapshot.get("as_of")
    age = None if as_of is None else max(0, now - as_of)
    stale = age is None or age > limit or any(
        s["stale"] for n, s in sections.items() if n in VITAL_SECTIONS and s.get("data") is not None)
    return {**snapshot, "sections": sections, "age_ms": age, "stale": stale}
