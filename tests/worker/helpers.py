"""Assertions shared by the worker's integration tests: simulator truth vs store, secret scans."""
from __future__ import annotations

import re
from typing import Any

from core.store import Store

TOKEN = re.compile(r"\d+:\d+:\d+:[0-9a-f]{160}")


def section_data(store: Store, index: int, name: str) -> Any:
    snapshot = store.account(index)
    return None if snapshot is None else snapshot["sections"][name]["data"]


def has_data(store: Store, index: int, names: tuple[str, ...]) -> bool:
    snapshot = store.account(index)
    return snapshot is not None and all(snapshot["sections"][n]["data"] is not None for n in names)


def mismatches(store: Store, truth: dict, index: int, orders: bool = True) -> list[str]:
    """Sections of the stored snapshot that differ from the simulator's truth (empty = match)."""
    snapshot = store.account(index)
    if snapshot is None:
        return ["no snapshot"]
    sections = snapshot["sections"]
    account = dict(truth["account"])
    positions = account.pop("positions")
    wrong = []
    if sections["positions"]["data"] != positions:
        wrong.append("positions")
    if sections["summary"]["data"] != account:
        wrong.append("summary")
    if sections["stats"]["data"] != truth["user_stats"]:
        wrong.append("stats")
    if orders and sections["orders"]["data"] != sorted(
            truth["orders"], key=lambda o: (o["market_index"], o["order_index"])):
        wrong.append("orders")
    return wrong


def assert_no_secrets(text: str, secrets: list[str]) -> None:
    """No private key (with or without 0x), proxy password or auth token in `text`."""
    for secret in secrets:
        bare = secret[2:] if secret.startswith("0x") else secret
        assert bare not in text, "a secret appeared in the worker's output"
    assert not TOKEN.search(text), "an auth token appeared in the worker's output"
