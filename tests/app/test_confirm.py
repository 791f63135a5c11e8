"""The `confirm` frame (app/ws/messages.confirmation, docs/websocket.md): a change that only moved freshness is a
few hundred bytes, and applying it by the documented rule gives the account the full update carries."""
from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

import core.snapshot
from app.ws import messages
from core.snapshot import SECTIONS, new_snapshot
from core.store import Change
from tests.app.helpers import apply_confirm

NOW = 1_733_000_010_000


def snapshots(big: bool = False) -> tuple[Any, Any]:
    index, seq = (2**63 - 1, 10**15) if big else (7, 30)
    before = new_snapshot(index, public_only=False, name="main", group=1)
    before.update(seq=seq, prev_seq=seq - 4, version=seq - 4, as_of=NOW - 9_000, written_at=NOW - 8_999)
    for i, name in enumerate(SECTIONS):
        before["sections"][name].update(source="rest", as_of=NOW - 9_000 - i, data=[{"row": i}])
    after = copy.deepcopy(before)
    after.update(seq=seq + 5, prev_seq=seq, as_of=NOW - 100, written_at=NOW - 99)
    moved = SECTIONS if big else ("summary", "positions")
    for name in moved:
        after["sections"][name].update(source="ws", as_of=NOW - 100)
    return before, after


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.snapshot, "now_ms", lambda: NOW)


@pytest.mark.parametrize("big", [False, True])
def test_a_confirm_applied_to_the_held_account_is_the_full_update_and_small(big: bool) -> None:
    before, after = snapshots(big)
    held = orjson.loads(messages.account_message("snapshot", before, 5.0))["account"]
    text = messages.confirmation(Change(after["seq"], after), before, 5.0)
    assert text is not None
    frame = orjson.loads(text)
    assert frame["type"] == "confirm" and frame["version"] == before["version"]
    assert frame["prev_seq"] == before["seq"] and frame["seq"] == after["seq"]
    # Every section moved, the widest ids: still under the bound (and a fraction of the account).
    full = messages.update(Change(after["seq"], after), 5.0)
    assert len(text.encode()) <= messages.CONFIRM_MAX_BYTES < len(full.encode())
    assert set(frame["sections"]) == (set(SECTIONS) if big else {"summary", "positions"})
    assert apply_confirm(held, frame) == orjson.loads(full)["account"]


def test_a_change_of_data_or_of_anything_else_is_not_a_confirm() -> None:
    before, after = snapshots()
    assert messages.confirmation(Change(after["seq"], {**after, "version": after["seq"]}), before, 5.0) is None
    assert messages.confirmation(Change(after["seq"], after), {**before, "seq": 29}, 5.0) is None  # not prev_seq
    assert messages.confirmation(Change(after["seq"], after), None, 5.0) is None
    assert messages.confirmation(Change(after["seq"], {**after, "name": "renamed"}), before, 5.0) is None
    unversioned = {k: v for k, v in after.items() if k != "version"}
    assert messages.confirmation(Change(after["seq"], unversioned), before, 5.0) is None
