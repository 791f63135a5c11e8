"""JSON Patch (RFC 6902) diffs for compact /ws updates (docs/websocket.md, "Patch updates"): pure, no I/O.

A patch is a list of operations applied in order, each `{"op": "add"|"remove"|"replace", "path": JSON Pointer}`
(+ `"value"`). We emit only those three, so any RFC 6902 implementation applies our patches (the tests apply them
with the `jsonpatch` library; the dashboard has its own dozen lines).

Lists are diffed element-wise (difflib's longest matching blocks on each element's JSON): a trade prepended to the
recent-trades list, an order inserted in the middle, a position row changing one field are each a few operations,
not the whole list again. A list whose operations would be longer than the list itself is replaced whole.
"""
from __future__ import annotations

from difflib import SequenceMatcher
from typing import Any

import orjson


def diff(old: Any, new: Any) -> list[dict[str, Any]]:
    """Operations turning `old` into `new` (JSON-compatible values; paths relative to them)."""
    ops: list[dict[str, Any]] = []
    _diff(old, new, "", ops)
    return ops


def _equal(a: Any, b: Any) -> bool:
    # Python has 1 == 1.0 == True; JSON does not. Compare encodings only when Python says equal (rare for big ones).
    return a == b and (a is b or orjson.dumps(a) == orjson.dumps(b))


def _key(path: str, key: Any) -> str:
    return f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}"


def _diff(old: Any, new: Any, path: str, ops: list[dict[str, Any]]) -> None:
    if _equal(old, new):
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                ops.append({"op": "remove", "path": _key(path, key)})
        for key, value in new.items():
            if key in old:
                _diff(old[key], value, _key(path, key), ops)
            else:
                ops.append({"op": "add", "path": _key(path, key), "value": value})
    elif isinstance(old, list) and isinstance(new, list):
        _diff_list(old, new, path, ops)
    else:
        ops.append({"op": "replace", "path": path, "value": new})


def _diff_list(old: list[Any], new: list[Any], path: str, ops: list[dict[str, Any]]) -> None:
    mine: list[dict[str, Any]] = []
    matcher = SequenceMatcher(None, [orjson.dumps(x) for x in old], [orjson.dumps(x) for x in new], autojunk=False)
    shift = 0  # where old index i sits in the list as patched so far: i + shift
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        at = i1 + shift
        paired = min(i2 - i1, j2 - j1)  # elements replaced one for one: diffed inside (a row that changed)
        for k in range(paired):
            _diff(old[i1 + k], new[j1 + k], f"{path}/{at + k}", mine)
        for _ in range(i2 - i1 - paired):
            mine.append({"op": "remove", "path": f"{path}/{at + paired}"})
        for k in range(paired, j2 - j1):
            mine.append({"op": "add", "path": f"{path}/{at + k}", "value": new[j1 + k]})
        shift += (j2 - j1) - (i2 - i1)
    whole = {"op": "replace", "path": path, "value": new}
    if len(mine) > 1 and len(orjson.dumps(mine)) >= len(orjson.dumps(whole)):
        ops.append(whole)
    else:
        ops.extend(mine)
