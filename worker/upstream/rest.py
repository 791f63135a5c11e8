"""Budgeted REST poller, one per egress: account snapshots and all-market active orders per account."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

import gevent
import gevent.event
import gevent.pool
import requests

from core.accounts import Account
from core.logs import fields
from core.snapshot import now_ms
from worker.ingest.parse import ParseError, parse_account, parse_orders
from worker.protocol import ACCOUNT_PATH, ACTIVE_ORDERS_PATH, SIMULATOR_HEADER
from worker.runtime import Runtime
from worker.upstream.egress import Egress
from worker.upstream.tokens import TokenError

log = logging.getLogger(__name__)
DEFAULT_RETRY_AFTER_S = 10.0  # a 429 without a usable Retry-After (Lighter's doc gives no default)


class Poll(StrEnum):
    """What one REST task fetches."""

    ACCOUNT = "account"  # summary and positions
    ORDERS = "orders"    # all-market active orders (keyed accounts only)


# The snapshot sections each poll fills (and flags when it fails).
POLL_SECTIONS = {Poll.ACCOUNT: ("summary", "positions"), Poll.ORDERS: ("orders",)}


@dataclass
class PollTask:
    kind: Poll
    account: Account
    due: float
    running: bool = False


class RequestFailed(Exception):
    """A request that produced no usable body; `message` goes into the section's error flag."""


class RestPoller:
    def __init__(self, rt: Runtime, egress: Egress) -> None:
        self.rt = rt
        self.egress = egress
        self.wake = gevent.event.Event()
        now = rt.clock()
        self.tasks: list[PollTask] = []
        # Spread first requests over one interval so an egress never bursts at start.
        count = max(1, len(egress.accounts))
        for n, account in enumerate(egress.accounts):
            self.tasks.append(PollTask(Poll.ACCOUNT, account, now + n * egress.plan.poll / count))
            if not account.public_only:
                self.tasks.append(PollTask(Poll.ORDERS, account, now + (n + 0.5) * egress.plan.orders / count))

    def interval(self, task: PollTask) -> float:
        return self.egress.plan.poll if task.kind == Poll.ACCOUNT else self.egress.plan.orders

    def run(self, stop: gevent.event.Event) -> None:
        pool = gevent.pool.Pool(self.rt.tuning.rest_concurrency)
        try:
            while not stop.is_set():
                idle = [t for t in self.tasks if not t.running]
                if not idle or pool.full():
                    self._sleep(stop, 1.0)
                    continue
                task = min(idle, key=lambda t: t.due)
                wait = max(task.due - self.rt.clock(), self.egress.budget.wait_time())
                if wait > 0:
                    self._sleep(stop, min(wait, 1.0))  # re-check: plans and pauses change
                    continue
                self.egress.budget.spend()
                task.running = True
                pool.spawn(self._execute, task)
        finally:
            pool.kill(block=False)

    def _sleep(self, stop: gevent.event.Event, seconds: float) -> None:
        gevent.wait([stop, self.wake], timeout=seconds, count=1)
        self.wake.clear()

    def _execute(self, task: PollTask) -> None:
        started = self.rt.clock()
        try:
            if task.kind == Poll.ACCOUNT:
                self._poll_account(task.account)
            else:
                self._poll_orders(task.account)
        except Exception as exc:  # noqa: BLE001 - one request's bug must not stop the feed (rq-style job
            # failure): logged with its traceback, counted, and the task runs again at its next interval.
            log.exception("unexpected error polling %s of account %s", task.kind, task.account.account_index)
            self.rt.record_error(f"rest:{task.kind}:{task.account.account_index}", f"internal: {exc!r}")
        finally:
            task.due = max(started + self.interval(task), self.rt.clock())
            task.running = False
            self.wake.set()

    def _poll_account(self, account: Account) -> None:
        index = account.account_index
        state = self.rt.states[index]
        requested_at = now_ms()
        try:
            raw = self._get(ACCOUNT_PATH, {"by": "index", "value": str(index)}, index)
            body = parse_account(raw, index)
        except (RequestFailed, ParseError) as exc:
            self._failed(index, Poll.ACCOUNT, str(exc))
            return
        now = now_ms()
        state.apply_account(body.summary, body.positions, now, requested_at)
        self.rt.stats[index].last_rest_at = now
        if state.changed:
            self.rt.sink.notify()

    def _poll_orders(self, account: Account) -> None:
        index = account.account_index
        state = self.rt.states[index]
        requested_at = now_ms()
        try:
            token = self.rt.tokens.get(account)
            raw = self._get(ACTIVE_ORDERS_PATH, {"account_index": str(index)}, index,
                            {"Authorization": token})
            body = parse_orders(raw)
        except (RequestFailed, ParseError, TokenError) as exc:
            self._failed(index, Poll.ORDERS, str(exc))
            return
        now = now_ms()
        state.apply_orders(body.orders, "rest", now, requested_at)
        self.rt.stats[index].last_rest_at = now
        if state.changed:
            self.rt.sink.notify()

    def _failed(self, index: int, what: Poll, message: str) -> None:
        state = self.rt.states[index]
        sections = POLL_SECTIONS[what]
        if state.section(sections[0])["error"] is None:  # log transitions, not every failed request
            log.warning("account %s: %s failing, keeping last good data: %s", index, what, message,
                        extra=fields(event="upstream_rest_failing", account=index, egress=self.egress.id))
        for name in sections:
            state.fail(name, f"rest {what}: {message}", "rest")
        self.rt.stats[index].errors += 1
        self.rt.record_error(f"rest:{what}:{index}", message)
        if state.changed:
            self.rt.sink.notify()

    def _get(self, path: str, params: dict[str, str], index: int, headers: dict[str, str] | None = None) -> bytes:
        """One GET through this egress; classify failures and apply 429/5xx/timeout pauses to the egress."""
        egress = self.egress
        egress.requests += 1
        self.rt.stats[index].requests += 1
        try:
            resp = egress.session.get(self.rt.settings.lighter_base_url + path, params=params,
                                      headers=headers, timeout=self.rt.tuning.http_timeout_s)
        except requests.RequestException as exc:
            self._transient(f"{type(exc).__name__} on {path}")
        if resp.headers.get(SIMULATOR_HEADER) == "1":
            self.rt.simulator = True
        if resp.status_code == 429:
            egress.rate_limited += 1
            self.rt.stats[index].rate_limited += 1
            pause = _retry_after(resp.headers.get("Retry-After"))
            egress.budget.pause(pause)
            raise RequestFailed(f"rate limited (429), egress paused {pause:.0f}s")
        if resp.status_code >= 500:
            self._transient(f"HTTP {resp.status_code} on {path}")
        if resp.status_code != 200:
            egress.errors += 1
            if resp.status_code == 401:
                self.rt.tokens.invalidate(index)
            raise RequestFailed(f"HTTP {resp.status_code} {resp.text[:160]}")
        egress.retry.up()
        return resp.content

    def _transient(self, message: str) -> None:
        """Upstream or the path to it is struggling: back the whole egress off, growing with each failure."""
        self.egress.errors += 1
        delay = self.egress.retry.next_delay()
        self.egress.budget.pause(delay)
        raise RequestFailed(f"{message}; egress backs off {delay:.1f}s")


def _retry_after(value: str | None) -> float:
    try:
        seconds = float(value) if value is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_S  # an HTTP date or garbage: be conservative
    return min(max(seconds, 1.0), 300.0)
