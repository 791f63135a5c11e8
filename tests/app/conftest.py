"""Helpers for web tests: a Feeder that writes the real store the way the worker does, and WebSocket readers."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.sync.client import connect

from core.settings import from_env
from core.snapshot import new_snapshot, now_ms
from core.store import Store
from tests.app.browser import chromium
from tests.waiting import wait_for


class Feeder:
    """Writes snapshots and status like the worker (single writer of `seq`, `prev_seq` per account)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.store = Store.from_settings(from_env(env))
        self.seq = self.store.head()
        self.prev: dict[int, int] = {}

    def track(self, indexes: list[int]) -> None:
        self.store.set_tracked(indexes)
        for index in indexes:
            self.put(index)

    def put(self, index: int, collateral: str = "100.000000", padding: int = 0, as_of: int | None = None) -> int:
        self.seq += 1
        snapshot = new_snapshot(index, public_only=False)
        at = now_ms() if as_of is None else as_of
        snapshot.update(prev_seq=self.prev.get(index), as_of=at)
        snapshot["sections"]["summary"].update(source="ws", as_of=at, data={"collateral": collateral, "index": index})
        snapshot["sections"]["positions"].update(source="ws", as_of=at, data=[{"market_id": 0, "position": "1.0"}])
        if padding:
            snapshot["sections"]["trades"].update(source="rest", as_of=at, data=[{"pad": "x" * padding}])
        self.store.put_account(snapshot, self.seq)
        self.prev[index] = self.seq
        return self.seq

    def status(self, heartbeat_age_ms: int = 0, **overrides: Any) -> None:
        record = {"schema": 1, "pid": os.getpid(), "started_at": now_ms() - 60_000,
                  "upstream": {"base_url": "http://127.0.0.1:1", "ws_url": "ws://127.0.0.1:1/stream",
                               "simulator": True},
                  "mode": "ws",
                  "intervals": {"poll": {"configured": 0.5, "effective": 1.5},
                                "orders": {"configured": 2.0, "effective": 2.0}, "stretched": True,
                                "reason": "budget"},
                  "egresses": [], "accounts": {}, "errors": [], **overrides}
        self.store.put_status(record)
        if heartbeat_age_ms:  # put_status stamps now; age it for worker-down tests
            self.store._set("status", {**self.store.status(), "heartbeat_at": now_ms() - heartbeat_age_ms})

    @contextmanager
    def beating(self, every_s: float = 0.2, **overrides: Any) -> Iterator[None]:
        """Keep the heartbeat fresh, like a live worker, until the block ends. A heartbeat written once goes stale
        after 3 s, and on a loaded machine a web can take that long to start: a test that needs the worker up
        holds this for as long as it does."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(every_s):
                self.status(**overrides)

        self.status(**overrides)  # fresh before the block starts, whenever the thread first runs
        heart = threading.Thread(target=beat, daemon=True, name="feeder-heartbeat")
        heart.start()
        try:
            yield
        finally:
            stop.set()
            heart.join(5)


@pytest.fixture
def file_env(tmp_path) -> dict[str, str]:
    return {"CACHE_DIR": str(tmp_path / "store")}


@pytest.fixture
def redis_env(tmp_path, redis_url) -> dict[str, str]:
    return {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": redis_url}


def messages(ws: Any, deadline_s: float = 10.0) -> Iterator[dict[str, Any]]:
    """Decoded messages from a websockets sync client until the deadline (then TimeoutError)."""
    end = time.monotonic() + deadline_s
    while True:
        remaining = end - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no message before the deadline")
        yield json.loads(ws.recv(timeout=remaining))


def until(ws: Any, predicate: Any, deadline_s: float = 10.0) -> dict[str, Any]:
    """The first message (read from `ws`, each within what is left of the deadline) for which `predicate` holds."""
    end = time.monotonic() + deadline_s
    seen: list[str] = []

    def next_match() -> dict[str, Any] | None:
        message = json.loads(ws.recv(timeout=max(0.0, end - time.monotonic())))
        seen.append(str(message.get("type")))
        return message if predicate(message) else None

    try:  # recv blocks until a message or the deadline: no pause needed between checks
        return wait_for(next_match, deadline_s, "a matching message", interval=0, ignore=(TimeoutError,),
                        idle=lambda _: None)
    except AssertionError as exc:
        raise TimeoutError(f"{exc} (message types read: {seen[-20:]})") from None


def open_ws(url: str, **kwargs: Any) -> Any:
    return connect(url, max_size=None, compression=None, open_timeout=10, **kwargs)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Headless Chromium for the dashboard tests (tests/app/browser.py); skipped where it is not installed."""
    with chromium() as launched:
        yield launched
