"""The trader's resources: /api/portfolio and the per-kind views (positions, orders, trades), each a conditional
`Resource` (body + ETag) for the one 200/304 builder (app/rest/conditional.py). The arithmetic is core/portfolio's.

ETags come from the accounts' seqs and staleness, like /api/accounts': every figure here is derived from the
snapshots, so an unchanged seq (and staleness) means an unchanged body.
"""
from __future__ import annotations

import heapq
from typing import Any

from app.rest.conditional import Resource
from app.status import account_body, list_etag
from core import portfolio
from core.settings import Settings
from core.snapshot import AccountBody, Snapshot, data_version, now_ms

KINDS = ("positions", "orders", "trades")
RECENT_FILLS = 20  # fills across accounts in the portfolio body (the dashboard's "recent fills")


def labels(snapshots: list[Snapshot], settings: Settings) -> dict[int, portfolio.Label]:
    """Each account's name and group: the worker writes them on the snapshot; the web's own settings (the same
    environment) answer for snapshots written before names were stored."""
    out: dict[int, portfolio.Label] = {}
    for snapshot in snapshots:
        index = snapshot["account_index"]
        configured = settings.account(index)
        name = snapshot.get("name") or (configured.name if configured else None)
        group = snapshot.get("group")
        if group is None and configured is not None:
            group = configured.group
        out[index] = portfolio.Label(name, group)
    return out


def _bodies(snapshots: list[Snapshot], ttl_s: float) -> list[AccountBody]:
    return [account_body(s, ttl_s) for s in snapshots]


# Per account, the figures and fills of the version last computed: only freshness moves while the seq stays, so a
# change to one account recomputes that account alone (~0.5 ms each), not the whole book. One entry per tracked
# account; the key includes `written_at`, so seqs restarting after a store reset never match an old entry.
_figures: dict[int, tuple[tuple[Any, ...], dict[str, Any], list[dict[str, Any]]]] = {}


def _account(body: AccountBody, label: portfolio.Label) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    index = body["account_index"]
    key = (body.get("seq"), body.get("written_at"), label)
    held = _figures.get(index)
    if held is None or held[0] != key:
        held = _figures[index] = (key, portfolio.account(body, label), portfolio.fills([body], {index: label},
                                                                                          RECENT_FILLS))
    figures = {**held[1], "stale": body["stale"], "age_ms": body["age_ms"], "as_of": body.get("as_of")}
    return figures, held[2]


def _portfolio(snapshots: list[Snapshot], settings: Settings) -> tuple[dict[str, Any], list[AccountBody]]:
    bodies = _bodies(snapshots, settings.cache_ttl)
    names = labels(snapshots, settings)
    computed = [_account(b, names[b["account_index"]]) for b in bodies]
    accounts = [figures for figures, _ in computed]
    fills = heapq.nlargest(RECENT_FILLS, (f for _, account_fills in computed for f in account_fills),
                           key=portfolio.fill_order)
    body = {"server_time": now_ms(), "total": portfolio.total(accounts), "accounts": accounts, "recent_fills": fills}
    return body, bodies


def portfolio_body(snapshots: list[Snapshot], settings: Settings) -> dict[str, Any]:
    """The /api/portfolio body (also the /ws `portfolio` message)."""
    return _portfolio(snapshots, settings)[0]


def portfolio_resource(snapshots: list[Snapshot], settings: Settings) -> Resource:
    """GET /api/portfolio: per account and in total, plus the newest fills across accounts."""
    body, bodies = _portfolio(snapshots, settings)
    return Resource(body, "portfolio-" + list_etag(bodies))


def kind_body(body: AccountBody, kind: str, label: portfolio.Label) -> dict[str, Any]:
    """One account's section of one kind, with the account's identity and the section's freshness."""
    section = body["sections"].get(kind) or {"source": None, "as_of": None, "data": None, "error": None,
                                             "age_ms": None, "stale": True}
    return {"account_index": body["account_index"], "name": label.name, "group": label.group,
            "seq": body.get("seq"), "public_only": body.get("public_only"), "kind": kind, **section}


def kind_resource(snapshot: Snapshot, kind: str, settings: Settings) -> Resource:
    """GET /api/accounts/<index>/<kind>."""
    body = account_body(snapshot, settings.cache_ttl)
    out = kind_body(body, kind, labels([snapshot], settings)[snapshot["account_index"]])
    return Resource(out, f"{kind}-{data_version(body)}{'-stale' if out['stale'] else ''}")


def kinds_resource(snapshots: list[Snapshot], kind: str, settings: Settings) -> Resource:
    """GET /api/<kind>: that section of every tracked account, in configuration order."""
    bodies = _bodies(snapshots, settings.cache_ttl)
    names = labels(snapshots, settings)
    accounts = [kind_body(b, kind, names[b["account_index"]]) for b in bodies]
    # The list's tag (crc of the seqs) with this kind's staleness (the sections', not the accounts').
    seqs = list_etag(bodies).removesuffix("-stale")
    stale = any(a["stale"] for a in accounts)
    return Resource({"kind": kind, "server_time": now_ms(), "accounts": accounts},
                    f"{kind}-{seqs}{'-stale' if stale else ''}")
