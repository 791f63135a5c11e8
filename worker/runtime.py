"""Process-wide worker state shared by the greenlets: accounts, egresses, recent errors, per-account counters."""
from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict

import gevent.event
import orjson

from core.accounts import Account
from core.logs import redact
from core.settings import Settings
from core.snapshot import Snapshot, now_ms
from core.store import FEED_SIZE, Store
from core.tuning import WorkerTuning
from worker.ingest import dispatch
from worker.ingest.merge import AccountState
from worker.ingest.parse import Frame
from worker.protocol import Channel
from worker.sink import Sink
from worker.upstream.egress import Egress, build_egresses
from worker.upstream.tokens import Tokens

if TYPE_CHECKING:
    from worker.alerts import AlertWorker
    from worker.history.recorder import HistoryRecorder

log = logging.getLogger(__name__)
RECENT_ERRORS_KEPT = 20


class RecentError(TypedDict):
    """One entry of the status record's `errors` (docs/worker.md)."""

    at: int          # ms; a repeat moves it to the latest occurrence
    where: str       # "ws:<egress>", "rest:<poll>:<account>", "store", "auth:<account>"...
    message: str     # redacted, at most 300 characters
    count: NotRequired[int]  # present once the same error repeated


@dataclass
class AccountStats:
    """Per-account counters for status and the once-a-minute summary log line."""

    egress: str
    last_rest_at: int | None = None
    last_ws_at: int | None = None
    requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    ws_frames: int = 0

    def reset_counters(self) -> None:
        self.requests = self.rate_limited = self.errors = self.ws_frames = 0


class Runtime:
    """Everything the greenlets share. Single-threaded (gevent), so plain attributes need no locks."""

    def __init__(self, settings: Settings, tuning: WorkerTuning, store: Store,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.tuning = tuning
        self.store = store
        self.clock = clock
        self.stop = gevent.event.Event()
        self.pid = os.getpid()
        self.started_at = now_ms()
        self.simulator = False
        self.accounts: dict[int, Account] = {a.account_index: a for a in settings.accounts}
        self.egresses: list[Egress] = build_egresses(settings, tuning, clock)
        self.stats = {a.account_index: AccountStats(e.id) for e in self.egresses for a in e.accounts}
        self.seen_snapshots: dict[int, Snapshot] = {}  # the store's accounts as a standby last saw them
        self.states = {i: AccountState(i, a.public_only, self._previous(i), a.name, a.group)
                       for i, a in self.accounts.items()}
        self.recent_errors: deque[RecentError] = deque(maxlen=RECENT_ERRORS_KEPT)
        self.tokens = Tokens(settings.lighter_base_url, tuning.token_ttl_s, tuning.token_refresh_before_s)
        self.role = "standby"          # "active" while this worker holds the writer lease (worker/lease.py)
        self.epoch: int | None = None  # the lease's epoch (writer tenure) while active
        self.epoch_seen = 0            # the highest epoch and seq seen in the store (worker/tenure.py: observe)
        self.seq_seen = 0
        self.lease_trouble = gevent.event.Event()  # the sink had a write refused: the lease keeper looks now
        self.history: HistoryRecorder | None = None  # set by worker.history.attach (None: history disabled)
        self.alerts: AlertWorker | None = None  # set by worker.alerts.attach (None: no alert rules)
        self.sink = self._new_sink()

    def _new_sink(self, floor: int = 0) -> Sink:
        confirm_every = max(0.25, min(2.0, self.settings.cache_ttl / 5))
        return Sink(self.store, self.states.values(), confirm_every, self.record_error, self.clock,
                    on_lost=self.lease_trouble.set, floor=floor)

    def begin_tenure(self) -> None:
        """Just took the writer lease: start from what the store holds now (a predecessor wrote since we read it),
        with a fresh sink that learns head before its first write."""
        self.states = {i: AccountState(i, a.public_only, self._previous(i), a.name, a.group)
                       for i, a in self.accounts.items()}
        # A store that lost its head since we last saw it (wiped while we waited) cannot tell which seqs the last
        # writer used after our last look: start a whole ring above, so no seq names two bodies (clients resync on
        # the new epoch anyway, and a resume from before the jump is a resync too).
        try:
            wiped = self.store.head() < self.seq_seen
        except Exception:  # noqa: BLE001 - unreadable now: the sink learns head at its first write
            wiped = False
        self.sink = self._new_sink(self.seq_seen + FEED_SIZE if wiped else 0)

    def sink_snapshots(self) -> list[Snapshot]:
        """Detached copies of every account's snapshot as this tenure starts (history's baseline)."""
        return [orjson.loads(orjson.dumps(state.snapshot)) for state in self.states.values()]

    def _previous(self, index: int) -> Snapshot | None:
        """The last snapshot a previous run wrote: serve it (aging into staleness) until upstream answers."""
        try:
            stored = self.store.account(index)
        except Exception as exc:  # noqa: BLE001 - any backend failure just means "start empty"
            log.warning("could not read the previous snapshot of account %s: %s", index, exc)
            stored = None
        # The store wiped while this worker waited as a standby: what it saw there before is the last good data.
        return stored if stored is not None else self.seen_snapshots.get(index)

    def record_error(self, where: str, message: str) -> None:
        text = redact(str(message), self.settings.secrets())[:300]
        last = self.recent_errors[-1] if self.recent_errors else None
        if last and last["where"] == where and last["message"] == text:
            last["at"] = now_ms()  # a repeating error moves to now instead of flooding the list
            last["count"] = last.get("count", 1) + 1
            return
        self.recent_errors.append({"at": now_ms(), "where": where, "message": text})

    def apply_frame(self, frame: Frame) -> None:
        """Merge one account frame, count it, and wake the writer (a WS update reaches the store immediately)."""
        if frame.account is None or frame.account not in self.states:
            return  # a frame for an account we never asked about
        state = self.states[frame.account]
        now = now_ms()
        stats = self.stats[frame.account]
        stats.last_ws_at = now
        stats.ws_frames += 1
        dispatch.apply_frame(state, frame, now)
        if state.changed:
            self.sink.notify()

    def confirm_live(self, channels: set[tuple[Channel, int]], at: int) -> None:
        """Live channels vouch that their sections were current at `at`, the connection's last frame:
        frames arrive in order, so every update sent before that frame has been merged."""
        for name, index in channels:
            state = self.states.get(index)
            if state is not None:
                dispatch.confirm_channel(state, name, at)
        self.sink.notify()
