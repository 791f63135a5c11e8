"""Clients that check every message they receive, for the fault drills (the stack they watch: helpers.py).

- no silent loss: `WsWatcher` checks each `update` against the previous `seq` it saw for that account
  (`prev_seq` chain), accepts a break only through an explicit `snapshot` with `resync: true`, and can check
  that a client subscribed to everything saw every global `seq` (`missing_seqs()`);
- last good data served: `check_body()` on every account body (REST and /ws): `stale` agrees with `age_ms` and
  the TTL, and a section that once had data never loses it (`DataMemory`);
- `Poller`: a thread asking the web again and again (`RestPoller`, and the drills' own list and health pollers).
"""
from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jsonpatch
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.waiting import wait_for

TTL_S = 2.0  # CACHE_TTL for drills: staleness shows up quickly
SECTIONS_WITH_DATA = ("summary", "positions", "stats")


def now_ms() -> int:
    return int(time.time() * 1000)


# -- account body checks -----------------------------------------------------------------------------------------
def check_body(body: dict[str, Any], ttl_s: float) -> list[str]:
    """Problems with one served account body: freshness fields missing or disagreeing with the TTL."""
    problems = []
    index = body.get("account_index")
    for key in ("seq", "as_of", "age_ms", "stale", "sections"):
        if key not in body:
            problems.append(f"account {index}: no {key!r}")
    if problems:
        return problems
    limit = ttl_s * 1000
    for name, section in body["sections"].items():
        age = section.get("age_ms")
        expected = age is None or age > limit
        if section.get("stale") is not expected:
            problems.append(f"account {index} section {name}: stale={section.get('stale')} with age_ms={age}")
    age = body["age_ms"]
    if age is not None and age > limit and body["stale"] is not True:
        problems.append(f"account {index}: age_ms={age} > TTL but not stale")
    return problems


class DataMemory:
    """Remembers which sections ever had data: a section that had data must keep serving it (flagged if old)."""

    def __init__(self) -> None:
        self.had: set[tuple[int, str]] = set()

    def check(self, body: dict[str, Any]) -> list[str]:
        problems = []
        index = body.get("account_index")
        for name, section in (body.get("sections") or {}).items():
            key = (index, name)
            if section.get("data") is not None:
                self.had.add(key)
            elif key in self.had:
                problems.append(f"account {index} section {name}: good data erased (seq {body.get('seq')})")
        return problems


def fully_fresh(body: dict[str, Any]) -> bool:
    """Not stale anywhere, no error flag, and the core sections present."""
    sections = body["sections"]
    return (body["stale"] is False and all(sections[n]["data"] is not None for n in SECTIONS_WITH_DATA)
            and all(not s["stale"] and s["error"] is None for s in sections.values() if s["data"] is not None))


# -- a /ws client that keeps up and checks everything ------------------------------------------------------------
class WsWatcher:
    """A /ws client that reads continuously in a thread and checks every message as it arrives."""

    def __init__(self, url: str, ttl_s: float = TTL_S, name: str = "ws") -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.name = name
        self.cond = threading.Condition()
        self.messages: list[tuple[int, dict[str, Any]]] = []  # (receipt ms, message)
        self.last: dict[int, int] = {}
        self.held: dict[int, dict[str, Any]] = {}  # the account as this client holds it (patches apply to it)
        self.violations: list[str] = []
        self.resyncs = 0
        self.updates = 0
        self.memory = DataMemory()
        self.closed: str | None = None
        self._stop = threading.Event()
        self.conn = connect(url, max_size=None, compression=None, open_timeout=10, close_timeout=2)
        self._thread = threading.Thread(target=self._run, name=f"watcher-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.conn.recv(timeout=0.5)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                with self.cond:
                    self.closed = f"closed: {exc}"
                    self.cond.notify_all()
                return
            message = json.loads(raw)
            with self.cond:
                self._check(message)
                self.messages.append((now_ms(), message))
                self.cond.notify_all()

    def _check(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind not in ("snapshot", "update", "confirm"):
            return
        index, seq, prev = message["account_index"], message["seq"], message.get("prev_seq")
        problems: list[str] = []
        if "patch" in message:
            # Protocol 2's default: a JSON Patch against the account this client holds (at prev_seq, checked
            # below). The applied result stands in the message as its account, as a full update would carry it.
            held = self.held.get(index)
            if held is None:
                problems.append(f"account {index}: patch at seq {seq} with no account held")
            else:
                message["account"] = jsonpatch.apply_patch(held, message["patch"])
        # A confirm (/ws protocol 2) carries no account, only its freshness: it is checked as a link of the chain.
        if "account" in message:
            self.held[index] = message["account"]
            problems += check_body(message["account"], self.ttl_s) + self.memory.check(message["account"])
        if kind == "snapshot":
            if message.get("resync"):
                self.resyncs += 1
            elif index in self.last:
                problems.append(f"account {index}: snapshot seq {seq} without resync after seq {self.last[index]}")
        else:
            self.updates += 1
            last = self.last.get(index)
            if last is None:
                problems.append(f"account {index}: update seq {seq} before any snapshot")
            elif prev != last:
                problems.append(f"account {index}: update seq {seq} has prev_seq {prev}, last seen {last}")
            if last is not None and seq <= last:
                problems.append(f"account {index}: seq went from {last} to {seq}")
        self.last[index] = seq
        self.violations += [f"{self.name}: {p}" for p in problems]

    # -- queries (all under the lock) ----------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[WsWatcher], Any], timeout: float, message: str) -> Any:
        """Wait on the receive condition (woken per message) until `predicate(self)` holds; fails at once if the
        connection closes first."""
        def check() -> Any:
            value = predicate(self)
            if not value and self.closed:
                raise AssertionError(f"{self.name}: {self.closed} while waiting for {message}")
            return value

        with self.cond:  # held while checking; cond.wait releases it until the next message
            return wait_for(check, timeout, f"{message} ({self.name})", interval=timeout, idle=self.cond.wait)

    def since(self, at_ms: int, kinds: tuple[str, ...] = ("update", "snapshot")) -> list[dict[str, Any]]:
        return [m for t, m in self.messages if t >= at_ms and m.get("type") in kinds]

    def fresh_update_after(self, at_ms: int, accounts: list[int]) -> bool:
        """Each account got an update/snapshot received after `at_ms` whose data is fully fresh."""
        seen = {m["account_index"] for m in self.since(at_ms) if fully_fresh(m["account"])}
        return set(accounts) <= seen

    def status_after(self, at_ms: int, predicate: Callable[[dict[str, Any]], bool]) -> bool:
        return any(predicate(m["status"]) for m in self.since(at_ms, ("status",)))

    def missing_seqs(self, since_seq: int = 0) -> list[int]:
        """For a client subscribed to every account in a run without store resets: global seqs after its first
        update that it never saw (neither as an update nor as a snapshot)."""
        with self.cond:
            updates = [m["seq"] for _, m in self.messages if m.get("type") == "update" and m["seq"] > since_seq]
            seen = {m["seq"] for _, m in self.messages if m.get("type") in ("update", "snapshot", "confirm")}
        if not updates:
            return []
        return [s for s in range(min(updates), max(updates) + 1) if s not in seen]

    def count(self, kind: str) -> int:
        with self.cond:
            return sum(1 for _, m in self.messages if m.get("type") == kind)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self.conn.close()
        self._thread.join(timeout=5)


# -- pollers: a thread that asks the web again and again while a drill runs ---------------------------------------
class Poller:
    """Calls `poll()` in a thread, `every_s` apart, until `close()`; the session ignores proxy settings from
    the environment (the web is on 127.0.0.1)."""

    def __init__(self, every_s: float, name: str = "poller", headers: Mapping[str, str] | None = None) -> None:
        self.every_s = every_s
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers.update(headers or {})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.every_s)

    def poll(self) -> None:
        """One round of requests through `self.session`; records what it finds, raises nothing."""
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.session.close()


class RestPoller(Poller):
    """Polls /api/accounts/<index> for each account (with ETags, as a good poller does) in a thread."""

    def __init__(self, base_url: str, accounts: list[int], ttl_s: float = TTL_S, every_s: float = 0.1,
                 headers: Mapping[str, str] | None = None, allowed: tuple[int, ...] = (200, 304)) -> None:
        self.base_url = base_url
        self.accounts = accounts
        self.ttl_s = ttl_s
        self.allowed = allowed
        self.lock = threading.Lock()
        self.latest: dict[int, dict[str, Any]] = {}
        self.statuses: dict[int, int] = {}
        self.violations: list[str] = []
        self.errors: list[str] = []
        self.requests = 0
        self.memory = DataMemory()
        self._etags: dict[int, str] = {}
        super().__init__(every_s, "rest-poller", headers)  # last: starts the thread

    def poll(self) -> None:
        for index in self.accounts:
            self._poll(index)

    def _poll(self, index: int) -> None:
        headers = {"If-None-Match": self._etags[index]} if index in self._etags else {}
        try:
            response = self.session.get(f"{self.base_url}/api/accounts/{index}", headers=headers, timeout=5)
        except requests.RequestException as exc:
            with self.lock:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            return
        with self.lock:
            self.requests += 1
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
            if response.status_code not in self.allowed:
                self.violations.append(f"GET /api/accounts/{index}: HTTP {response.status_code}")
                return
            if response.status_code != 200:
                return
            body = response.json()
            self._etags[index] = response.headers.get("ETag", "")
            previous = self.latest.get(index)
            if previous is not None and body["seq"] < previous["seq"]:
                self.violations.append(f"account {index}: REST seq went back from {previous['seq']} to {body['seq']}")
            self.violations += check_body(body, self.ttl_s) + self.memory.check(body)
            self.latest[index] = {**body, "_received": now_ms()}

    def body(self, index: int) -> dict[str, Any] | None:
        with self.lock:
            return self.latest.get(index)
