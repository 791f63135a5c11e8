"""The merge-patch rule of patch updates (app/patches.py): a diff applied to the old document gives the new one."""
from __future__ import annotations

import copy
import random

from app import patches


def test_only_what_changed_is_in_the_patch_and_applying_it_gives_the_new_document() -> None:
    old = {"seq": 4, "sections": {"summary": {"as_of": 1, "data": {"collateral": "10", "x": None}, "error": "boom"},
                                  "trades": {"as_of": 1, "data": [{"id": 1}], "error": None}}}
    new = copy.deepcopy(old)
    new["seq"] = 5
    new["sections"]["summary"]["data"]["collateral"] = "11"
    new["sections"]["summary"]["error"] = None       # null is a value, not a deletion
    new["sections"]["trades"]["data"].append({"id": 2})  # lists are replaced whole
    patch = patches.diff(old, new)
    assert patch == {"seq": 5, "sections": {"summary": {"data": {"collateral": "11"}, "error": None},
                                            "trades": {"data": [{"id": 1}, {"id": 2}]}}}
    assert patches.apply(old, patch) == new
    assert old["sections"]["summary"]["data"]["collateral"] == "10"  # apply copies, never mutates
    assert patches.diff(new, new) == {}


def test_a_removed_key_has_no_patch() -> None:
    assert patches.diff({"a": 1, "b": {"c": 1, "d": 2}}, {"a": 1, "b": {"c": 1}}) is None
    assert patches.diff({"a": 1, "b": 2}, {"a": 1}) is None


def test_types_that_python_calls_equal_still_differ_on_the_wire() -> None:
    assert patches.diff({"a": 1}, {"a": True}) == {"a": True}
    assert patches.diff({"a": 1}, {"a": 1.0}) == {"a": 1.0}
    assert patches.diff({"a": {"b": 1}}, {"a": 5}) == {"a": 5}
    assert patches.diff({"a": 5}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def _random_doc(rng: random.Random, depth: int = 0) -> dict:
    doc = {}
    for key in rng.sample("abcdefgh", rng.randint(0, 6)):
        roll = rng.random()
        if roll < 0.3 and depth < 3:
            doc[key] = _random_doc(rng, depth + 1)
        elif roll < 0.45:
            doc[key] = [rng.randint(0, 3) for _ in range(rng.randint(0, 3))]
        elif roll < 0.6:
            doc[key] = None
        else:
            doc[key] = rng.choice([0, 1, "x", "y", 2.5, True])
    return doc


def test_random_documents_round_trip() -> None:
    rng = random.Random(7)
    patched = refused = 0
    for _ in range(3000):
        old, new = _random_doc(rng), _random_doc(rng)
        patch = patches.diff(old, new)
        if patch is None:
            refused += 1
            continue
        patched += 1
        assert patches.apply(old, patch) == new
    assert patched > 300 and refused > 300  # both outcomes were exercised


def test_a_patch_update_turns_the_previous_update_into_the_next_one() -> None:
    import orjson

    from app import messages
    from app.store import Change, new_snapshot

    before = new_snapshot(7, public_only=False)
    before.update(seq=3, as_of=1_000, written_at=1_001)
    before["sections"]["summary"].update(source="rest", as_of=1_000, data={"collateral": "10", "fees": "0"})
    before["sections"]["trades"].update(source="ws", as_of=900, data=[{"trade_id": 1}])
    after = copy.deepcopy(before)
    after.update(seq=9, prev_seq=3, as_of=2_000, written_at=2_001)
    after["sections"]["summary"].update(source="ws", as_of=2_000, data={"collateral": "11", "fees": "0"})

    held = orjson.loads(messages.account_message("snapshot", before, 5.0))["account"]
    message = orjson.loads(messages.patch_update(Change(9, after), before, 5.0))
    assert (message["type"], message["seq"], message["prev_seq"], message["account_index"]) == ("update", 9, 3, 7)
    assert set(message["patch"]["sections"]["trades"]) == {"age_ms", "stale"}  # unchanged: only its age again
    assert message["patch"]["sections"]["summary"]["data"] == {"collateral": "11"}
    full = orjson.loads(messages.update(Change(9, after), 5.0))["account"]
    patched = patches.apply(held, message["patch"])
    ages = lambda doc: [doc["age_ms"]] + [s["age_ms"] for s in doc["sections"].values()]  # noqa: E731
    assert all(abs(a - b) <= 50 for a, b in zip(ages(patched), ages(full)) if a is not None)  # encoded ms apart
    assert {**patched, "age_ms": 0, "sections": {n: {**s, "age_ms": 0} for n, s in patched["sections"].items()}} \
        == {**full, "age_ms": 0, "sections": {n: {**s, "age_ms": 0} for n, s in full["sections"].items()}}

    assert messages.patch_update(Change(9, after), {**before, "seq": 2}, 5.0) is None  # not the prev_seq version
    assert messages.patch_update(Change(9, {**after, "prev_seq": None}), before, 5.0) is None
