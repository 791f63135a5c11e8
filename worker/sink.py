"""The single store writer: owns the global seq, writes changes at once, survives a dead backend."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import gevent.event
import orjson
from redis.exceptions import RedisError

from core.backoff import Retry
from core.lease import LeaseLost
from core.snapshot import Snapshot, data_digest
from core.store import Record, Store, StoreError
from worker.ingest.merge import AccountState

log = logging.getLogger(__name__)
STORE_ERRORS = (StoreError, RedisError, OSError)
STORE_RETRY_CAP_S = 1.0


class Sink:
    """Producers mutate AccountStates and call `notify()`; this greenlet writes what moved.

    One writer keeps `seq` and `head` in order (two concurrent writers could move head backwards).
    Data changes are written immediately; `as_of`-only confirmations at most every `confirm_every` s. What is due
    at once goes in one store call, so web watchers fan it out in one pass (each pass costs ~15 µs per client).
    History and alerts get copies after the store call (`_hand_on`): nothing but the write stands between an
    upstream frame and the web.
    If the backend fails, data stays in memory and everything is rewritten once it is back; `heal()` asks for the
    same rewrite when the store lost what we wrote. A write the store refuses for want of the writer lease is
    kept in memory too and reported to `on_lost` (the lease keeper re-takes the lease or steps down).

    Each write carries the account's content `version` (core/snapshot.py): the seq of the last write whose data
    moved. A confirmation, a rewrite after an outage or a new tenure keeps it: the data digest is compared with
    the one at that version (learned from the states as read from the store when the sink is made).
    """

    def __init__(self, store: Store, states: Iterable[AccountState], confirm_every: float,
                 on_error: Callable[[str, str], None], clock: Callable[[], float] = time.monotonic,
                 on_lost: Callable[[], None] | None = None, floor: int = 0) -> None:
        self.store = store
        self._floor = floor  # the first seq is above it (a takeover of a wiped store, see Runtime.begin_tenure)
        self._on_lost = on_lost
        self.states = list(states)
        self.confirm_every = confirm_every
        self._on_error = on_error
        self._clock = clock
        self._wake = gevent.event.Event()
        self._kick = gevent.event.Event()  # heal(): retry now, whatever the backoff says
        # Capped at 1 s: the store is ours, an attempt a second costs nothing, and the promise is fresh data within
        # 2 s of the store coming back, whatever the length of the outage (a 5 s cap broke it after 12 s down).
        self._retry = Retry(clock, 0.2, cap=STORE_RETRY_CAP_S, healthy_after=10.0)
        self._last_confirm = 0.0
        self._tracked_due = True
        self.seq: int | None = None
        self.healthy = False
        self.writes = 0
        self.failures = 0
        # History (worker/history): gets each batch of detached snapshots once written (or tried); must not block.
        self.on_written: Callable[[list[Snapshot]], None] | None = None
        self.on_alerts: Callable[[list[Snapshot]], None] | None = None  # alerts (worker/alerts): same contract
        # account -> the data digest at its current version (at first: the version the store held).
        self._digests = {state.index: state.stored_digest for state in self.states if state.stored_digest is not None}

    def notify(self) -> None:
        self._wake.set()

    def heal(self, reason: str) -> None:
        """The store lost `reason` (or we have a new lease): republish the tracked list and rewrite every snapshot."""
        if self.healthy:
            log.warning("store lost %s; rewriting everything from seq %s", reason, self.seq)
        self.healthy = False
        self._wake.set()
        self._kick.set()

    def _connect(self) -> int:
        """(Re)learn where the feed is and publish what we track; after an outage the store may be empty.
        Returns the last seq written."""
        head = self.store.head()
        # A kill -9 between put_account's writes can leave an account key ahead of head: never reuse its seq.
        seq = max([self.seq or 0, head, self._floor] + [s.snapshot.get("seq") or 0 for s in self.states])
        self.seq = seq
        self._tracked_due = True  # written with the snapshots (after them), not before: see put_accounts
        for state in self.states:
            state.changed = True
        if self.failures and not self.healthy:
            log.info("store reachable again (%d failed writes so far); rewriting every snapshot from seq %d",
                     self.failures, self.seq)
        self.healthy = True
        self._retry.up()
        return seq

    def flush(self, confirmations: bool) -> None:
        """Write every state that moved (and, with `confirmations`, every confirmed one) in one store call."""
        last = self.seq if self.healthy and self.seq is not None else self._connect()
        due: list[AccountState] = []
        writes: list[tuple[Snapshot, int]] = []
        digests: list[bytes] = []
        for state in self.states:
            snapshot = state.take() if state.changed or (confirmations and state.confirmed) else None
            if snapshot is None:
                continue
            seq = last + len(writes) + 1
            digest = data_digest(snapshot)
            version = snapshot.get("version")
            if not isinstance(version, int) or self._digests.get(state.index) != digest:
                version = seq  # the data moved (or was never versioned): this write starts a version
            # The contract's prev_seq: this account's previous write (a previous run's, when resumed from the store).
            # A shallow copy is enough: the store encodes it below before anything can yield to a producer.
            due.append(state)
            digests.append(digest)
            writes.append(({**snapshot, "prev_seq": snapshot.get("seq") or None, "version": version}, seq))
        records = self.store.records(writes)
        try:
            self.store.put_records(records, [s.index for s in self.states] if self._tracked_due else None)
        except (*STORE_ERRORS, LeaseLost):
            for state in due:
                state.changed = True
            raise
        finally:
            self._hand_on(records)  # history keeps recording while the store is down
        self._tracked_due = False
        for (written, seq), state, digest in zip(writes, due, digests, strict=True):
            state.snapshot["seq"] = seq
            state.snapshot["version"] = written["version"]
            self._digests[state.index] = digest
        self.seq = last + len(writes)
        self.writes += len(writes)

    def _hand_on(self, records: list[Record]) -> None:
        """History and alerts get detached copies of what was written (or tried), decoded from the store's own
        encoding, after the write: the web has the change before the worker spends anything on them."""
        if not records or (self.on_written is None and self.on_alerts is None):
            return
        written: list[Snapshot] = [orjson.loads(record.data) for record in records]
        if self.on_written is not None:
            self.on_written(written)
        if self.on_alerts is not None:
            self.on_alerts(written)

    def run(self, stop: gevent.event.Event) -> None:
        while not stop.is_set():
            # Sleep until woken by a change or until confirmations fall due, whichever comes first.
            self._wake.wait(timeout=max(0.01, self._last_confirm + self.confirm_every - self._clock()))
            self._wake.clear()
            if stop.is_set():
                break
            due = self._clock() - self._last_confirm >= self.confirm_every
            if self.write_once(due):
                if due:
                    self._last_confirm = self._clock()
                continue
            # Back off, but not past a heal(): the lease keeper saw the store back (and empty) and wants it rewritten.
            gevent.wait([stop, self._kick], timeout=self._retry.next_delay(), count=1)
            self._kick.clear()
            self._wake.set()

    def write_once(self, confirmations: bool) -> bool:
        """One flush; False (and the error recorded) if the backend failed."""
        try:
            self.flush(confirmations)
            return True
        except LeaseLost as exc:
            self.healthy = False
            self._on_error("store", f"write refused: {exc}")
            if self._on_lost is not None:
                self._on_lost()
            return False
        except STORE_ERRORS as exc:
            self.failures += 1
            if self.healthy:
                log.warning("store write failed, keeping data in memory and retrying: %s", exc)
            self.healthy = False
            self._on_error("store", f"write failed: {exc}")
            return False
