"""The conditional answer (app/rest/conditional.py), pure: the ETag is the content version, and the freshness
travels in headers, on the 304 too."""
from __future__ import annotations

import core.snapshot
from app.rest import conditional
from core.snapshot import new_snapshot

NOW = 1_733_000_010_000


def account(index: int, seq: int, version: int | None, as_of: int | None):
    snapshot = new_snapshot(index, public_only=False)
    snapshot.update(seq=seq, as_of=as_of)
    if version is not None:
        snapshot["version"] = version
    snapshot["sections"]["summary"].update(source="ws", as_of=as_of, data={"collateral": "1"})
    return snapshot


def test_a_confirmation_keeps_the_tag_and_the_304_says_how_fresh(monkeypatch) -> None:
    monkeypatch.setattr(core.snapshot, "now_ms", lambda: NOW)
    monkeypatch.setattr(conditional, "now_ms", lambda: NOW)
    before = conditional.account_resource(account(7, 10, 10, NOW - 3_000), 5.0)
    after = conditional.account_resource(account(7, 14, 10, NOW - 200), 5.0)  # only as_of moved
    assert before.tag == after.tag == "10"
    reply = conditional.answer(after, 0.5, f'W/"{before.tag}"')
    assert reply.status == 304 and reply.body is None
    assert dict(reply.headers) == {"ETag": 'W/"10"', "Cache-Control": "no-cache", "X-Poll-Interval": "0.5",
                                   "X-Data-As-Of": str(NOW - 200), "X-Data-Age-Ms": "200"}
    changed = conditional.account_resource(account(7, 15, 15, NOW - 100), 5.0)
    assert conditional.answer(changed, 0.5, f'W/"{before.tag}"').status == 200
    stale = conditional.account_resource(account(7, 16, 10, NOW - 9_000), 5.0)
    assert stale.tag == "10-stale" and conditional.answer(stale, 0.5, 'W/"10"').status == 200
    # An older writer's snapshot (no version) is tagged by its seq, as before.
    assert conditional.account_resource(account(7, 12, None, NOW), 5.0).tag == "12"


def test_a_list_is_as_fresh_as_its_oldest_account(monkeypatch) -> None:
    monkeypatch.setattr(conditional, "now_ms", lambda: NOW)
    one = conditional.list_resource([account(1, 3, 3, NOW - 50), account(2, 4, 2, NOW - 700)], 5.0)
    confirmed = conditional.list_resource([account(1, 5, 3, NOW - 10), account(2, 6, 2, NOW - 20)], 5.0)
    assert one.tag == confirmed.tag and one.as_of == NOW - 700
    headers = dict(conditional.answer(one, 1.0, None).headers)
    assert headers["X-Data-As-Of"] == str(NOW - 700) and headers["X-Data-Age-Ms"] == "700"
    never = conditional.list_resource([account(1, 3, 3, None), account(2, 4, 2, NOW)], 5.0)
    assert never.as_of is None and "X-Data-As-Of" not in dict(conditional.answer(never, 1.0, None).headers)
