"""Patch updates (app/ws/patches.py): our JSON Patch diffs, applied by a standard RFC 6902 library (jsonpatch),
turn the old document into the new one, and stay small for the changes accounts really see."""
from __future__ import annotations

import copy
import random

import jsonpatch
import orjson

from app.ws import messages, patches
from core.snapshot import new_snapshot
from core.store import Change
from tests.jsondocs import mutate, random_value


def roundtrip(old, new) -> list[dict]:
    ops = patches.diff(old, new)
    assert jsonpatch.apply_patch(copy.deepcopy(old), ops) == new
    exact = orjson.OPT_SORT_KEYS  # types too (1, 1.0 and true are equal in Python); key order is not data
    assert orjson.dumps(jsonpatch.apply_patch(copy.deepcopy(old), ops), option=exact) == orjson.dumps(new, option=exact)
    return ops


def trade(i: int) -> dict:
    return {"trade_id": i, "market_id": 0, "size": "0.01", "price": f"{3000 + i}.00", "timestamp": 1_000 + i}


def test_fields_that_changed_are_replaced_and_keys_added_or_removed() -> None:
    old = {"seq": 4, "sections": {"summary": {"data": {"collateral": "10", "gone": 1}, "error": "boom"}}}
    new = {"seq": 5, "sections": {"summary": {"data": {"collateral": "11", "new": None}, "error": None}}}
    ops = roundtrip(old, new)
    assert {"op": "replace", "path": "/sections/summary/data/collateral", "value": "11"} in ops
    assert {"op": "remove", "path": "/sections/summary/data/gone"} in ops
    assert {"op": "add", "path": "/sections/summary/data/new", "value": None} in ops
    assert len(ops) == 5 and patches.diff(new, new) == []


def test_a_trade_prepended_to_a_full_recent_trades_list_is_two_operations() -> None:
    old = [trade(i) for i in range(50, 0, -1)]  # newest first, at the cap
    new = [trade(51)] + old[:49]
    ops = roundtrip({"trades": old}, {"trades": new})
    assert ops == [{"op": "add", "path": "/trades/0", "value": trade(51)}, {"op": "remove", "path": "/trades/50"}]


def test_a_row_that_changed_in_place_is_diffed_inside_and_a_reshuffle_is_replaced_whole() -> None:
    rows = [{"market_id": m, "position": "1.0", "unrealized_pnl": "0.5"} for m in range(5)]
    moved = copy.deepcopy(rows)
    moved[2]["unrealized_pnl"] = "0.7"
    assert roundtrip(rows, moved) == [{"op": "replace", "path": "/2/unrealized_pnl", "value": "0.7"}]
    reversed_rows = rows[::-1]
    assert roundtrip(rows, reversed_rows) == [{"op": "replace", "path": "", "value": reversed_rows}]


def test_types_that_python_calls_equal_still_differ_on_the_wire() -> None:
    assert roundtrip({"a": 1}, {"a": True}) == [{"op": "replace", "path": "/a", "value": True}]
    assert roundtrip({"a": [1]}, {"a": [1.0]})
    assert roundtrip({"a/b": {"~c": 1}}, {"a/b": {"~c": 2}}) == [{"op": "replace", "path": "/a~1b/~0c", "value": 2}]


def test_random_documents_round_trip_through_a_standard_json_patch_library() -> None:
    rng = random.Random(7)
    kinds = set()
    for _ in range(2000):
        old = {"doc": random_value(rng)}
        new = {"doc": mutate(rng, old["doc"])} if rng.random() < 0.8 else {"doc": random_value(rng)}
        kinds |= {op["op"] for op in roundtrip(old, new)}
    assert kinds == {"add", "remove", "replace"}


def test_a_patch_update_turns_the_previous_update_into_the_next_one() -> None:
    before = new_snapshot(7, public_only=False)
    before.update(seq=3, as_of=1_000, written_at=1_001)
    before["sections"]["summary"].update(source="rest", as_of=1_000, data={"collateral": "10", "fees": "0"})
    before["sections"]["trades"].update(source="ws", as_of=900, data=[trade(1)])
    after = copy.deepcopy(before)
    after.update(seq=9, prev_seq=3, as_of=2_000, written_at=2_001)
    after["sections"]["summary"].update(source="ws", as_of=2_000, data={"collateral": "11", "fees": "0"})
    after["sections"]["trades"]["data"].insert(0, trade(2))

    held = orjson.loads(messages.account_message("snapshot", before, 5.0))["account"]
    message = orjson.loads(messages.patch_update(Change(9, after), before, 5.0))
    assert (message["type"], message["seq"], message["prev_seq"], message["account_index"]) == ("update", 9, 3, 7)
    assert {"op": "add", "path": "/sections/trades/data/0", "value": trade(2)} in message["patch"]
    assert not any(op["path"].startswith("/sections/orders/") and not op["path"].endswith(("/age_ms", "/stale"))
                   for op in message["patch"])  # untouched sections: only their age again
    full = orjson.loads(messages.update(Change(9, after), 5.0))["account"]
    patched = jsonpatch.apply_patch(held, message["patch"])

    def ages(doc):
        return [doc["age_ms"]] + [s["age_ms"] for s in doc["sections"].values()]

    assert all(a is None and b is None or abs(a - b) <= 50 for a, b in zip(ages(patched), ages(full), strict=False))

    def no_ages(doc):
        return {**doc, "age_ms": 0, "sections": {n: {**s, "age_ms": 0} for n, s in doc["sections"].items()}}

    assert no_ages(patched) == no_ages(full)
    assert messages.patch_update(Change(9, after), {**before, "seq": 2}, 5.0) is None  # not the prev_seq version
    assert messages.patch_update(Change(9, {**after, "prev_seq": None}), before, 5.0) is None
