"""The REST reader's outcomes, in-process: a file store in a temporary directory and a stand-in for the watcher."""
from __future__ import annotations

from typing import Any

import pytest

from app.feed.mirror import Mirror
from app.rest.reader import NotPopulated, NotTracked, Reader, Unpopulated
from core.settings import from_env
from core.snapshot import new_snapshot
from core.store import Store, StoreError


class Watcher:
    """`serving()` as the real watcher answers it: the mirror while in sync, else None."""

    def __init__(self, mirror: Mirror | None) -> None:
        self.mirror = mirror

    def serving(self) -> Mirror | None:
        return self.mirror


@pytest.fixture
def store(tmp_path: Any) -> Store:
    return Store.from_settings(from_env({"CACHE_DIR": str(tmp_path / "store")}))


def put(store: Store, account: int, seq: int) -> None:
    store.put_account({**new_snapshot(account, public_only=True), "seq": seq}, seq)


def test_outcomes_from_the_store(store: Store) -> None:
    reader = Reader(store, Watcher(None))  # type: ignore[arg-type]
    # No tracked list: both paths raise (every route answers 503 + Retry-After), never "not tracked" or [].
    with pytest.raises(Unpopulated):
        reader.account(7)
    with pytest.raises(Unpopulated):
        reader.accounts()
    store.set_tracked([7])
    assert reader.account(7) == NotTracked(7)  # tracked, but no snapshot yet
    put(store, 7, 1)
    put(store, 8, 2)  # written but not tracked
    found = reader.account(7)
    assert not isinstance(found, NotTracked | NotPopulated) and found["seq"] == 1
    assert reader.account(8) == NotTracked(8)
    assert [s["account_index"] for s in reader.accounts()] == [7]
    assert reader.held(7) is None and reader.held_accounts() is None  # no trusted mirror: nothing in memory


def test_the_mirror_answers_while_trusted_and_misses_go_to_the_store(store: Store) -> None:
    store.set_tracked([7])
    put(store, 7, 1)
    mirror = Mirror(store, max_age_s=3600)
    mirror.reset()
    put(store, 7, 2)  # the feed has not brought it yet
    reader = Reader(store, Watcher(mirror))  # type: ignore[arg-type]
    assert reader.held(7)["seq"] == reader.account(7)["seq"] == 1  # type: ignore[index]
    assert [s["seq"] for s in reader.held_accounts() or []] == [1]

    def down(*_args: Any) -> Any:
        raise StoreError("store down")

    store.account = store.tracked = store.populated = down  # type: ignore[method-assign]
    assert reader.account(7)["seq"] == 1  # type: ignore[index]  # no store read while the mirror holds it
    with pytest.raises(StoreError):
        reader.account(9)  # a miss asks the store, whose failure each route answers its own way
