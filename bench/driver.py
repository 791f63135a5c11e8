"""`python -m bench.driver`: write stamped account snapshots into our store at a fixed rate (the worker's role).

Used by the fan-out benchmark in place of simulator+worker so the update rate and payload are exactly those the
reference server pushes. Prints {"stamps": [[seq, stamp_ms], ...]} on exit. Bounded: stops after --seconds.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any

from bench.payload import DEFAULT_BYTES, make_snapshot, stamp


class Feed:
    """Round-robin changes over `accounts` with a global seq and per-account prev_seq, as the worker writes them."""

    def __init__(self, accounts: list[int], payload_bytes: int = DEFAULT_BYTES, first_seq: int = 1) -> None:
        self.accounts = accounts
        self.snapshots = {a: make_snapshot(a, 0, payload_bytes) for a in accounts}
        self.last_seq: dict[int, int | None] = {a: None for a in accounts}
        self.seq = first_seq - 1
        self.tick = 0
        self.stamps: list[tuple[int, float]] = []

    def next_change(self, due_ms: float | None = None) -> dict[str, Any]:
        """The next change, stamped `due_ms` (its slot on the sender's schedule; now if not given)."""
        account = self.accounts[self.tick % len(self.accounts)]
        self.tick += 1
        self.seq += 1
        snap = self.snapshots[account]
        snap["seq"], snap["prev_seq"] = self.seq, self.last_seq[account]
        self.last_seq[account] = self.seq
        self.stamps.append((self.seq, stamp(snap, due_ms)))
        return snap


def run(store: Any, accounts: list[int], rate_hz: float, seconds: float, payload_bytes: int,
        stop: threading.Event) -> list[tuple[int, float]]:
    """Write `rate_hz` changes per second (round robin over accounts) for `seconds`, on an absolute schedule.

    Each change is stamped with its slot on that schedule, not with the moment it was written: latency is counted
    from when a change was due, so a sender that falls behind shows it (bench.reference_server does the same)."""
    feed = Feed(accounts, payload_bytes, first_seq=store.head() + 1)
    store.set_tracked(accounts)
    interval = 1.0 / rate_hz
    start, wall = time.monotonic(), time.time() * 1000
    k = 0
    while not stop.is_set() and k * interval < seconds:
        delay = start + k * interval - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        snap = feed.next_change(due_ms=wall + k * interval * 1000)
        store.put_account(snap, snap["seq"])
        k += 1
    return feed.stamps


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.driver")
    p.add_argument("--accounts", type=int, default=10)
    p.add_argument("--first-account", type=int, default=1000)
    p.add_argument("--rate", type=float, default=20.0, help="changes per second over all accounts")
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--bytes", type=int, default=DEFAULT_BYTES)
    args = p.parse_args(argv)
    from core.settings import from_env
    from core.store import Store

    store = Store.from_settings(from_env())  # the environment only: never a developer's .env
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    accounts = list(range(args.first_account, args.first_account + args.accounts))
    stamps = run(store, accounts, args.rate, args.seconds, args.bytes, stop)
    sys.stdout.write(json.dumps({"stamps": stamps}) + "\n")


if __name__ == "__main__":
    main()
