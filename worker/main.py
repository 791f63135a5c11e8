"""Worker process wiring: long-lived greenlets in one group, crash = exit non-zero, SIGTERM = clean stop."""
from __future__ import annotations

import logging
import os
import signal
from typing import Any

import gevent
import gevent.event
import gevent.pool

from core.heap import freeze_startup_heap
from core.lease import Lease, LeaseLost, new_owner
from core.settings import Settings
from core.snapshot import now_ms
from core.store import Store
from core.tuning import WorkerTuning
from worker.alerts import attach as attach_alerts
from worker.history import attach as attach_history
from worker.runtime import Runtime
from worker.sink import STORE_ERRORS
from worker.status import build_status, log_summary
from worker.tenure import LEASE_ERRORS, keep, wait_as_standby
from worker.upstream.budget import per_window
from worker.upstream.rest import RestPoller
from worker.upstream.tokens import TokenError
from worker.upstream.ws import UpstreamSocket

log = logging.getLogger(__name__)
STOP_GRACE_S = 3.0  # of the 5 s we promise: greenlets get this long after the final writes


def _status_loop(rt: Runtime, tenure: gevent.event.Event) -> None:
    failing = False
    while True:
        try:
            rt.store.put_status(build_status(rt))
            failing = False
        except (*STORE_ERRORS, LeaseLost) as exc:
            if not failing:  # log the outage once, not once a second
                log.warning("status write failed (store down?): %s", exc)
            failing = True
            rt.record_error("store", f"status write failed: {exc}")
        if tenure.wait(rt.tuning.status_every_s):
            return


def _summary_loop(rt: Runtime, tenure: gevent.event.Event) -> None:
    period = rt.tuning.summary_every_s
    while not tenure.wait(period):
        log_summary(rt, period)


def _prime_tokens(rt: Runtime) -> None:
    """Load the signer library and mint first tokens now, so a bad key shows up at start, by account."""
    for account in rt.accounts.values():
        if account.public_only:
            log.warning("account %s (Lighter_%s_%s_*) has no private key: tracked public-only "
                        "(summary, positions, stats; no active orders)", account.account_index,
                        account.group, account.name)
            continue
        try:
            rt.tokens.get(account)
        except TokenError as exc:
            log.error("%s", exc)
            rt.record_error(f"auth:{account.account_index}", str(exc))


class _LogStream:
    """gevent prints greenlet tracebacks to a stream; route them through logging so they are redacted."""

    def write(self, text: str) -> int:
        if text.strip():
            log.error("%s", text.rstrip())
        return len(text)

    def flush(self) -> None:
        return None


def _install_signals(rt: Runtime) -> None:
    def handle() -> None:
        if rt.stop.is_set():
            log.error("second stop signal: exiting immediately")
            os._exit(1)
        log.info("stop signal received; shutting down")
        rt.stop.set()

    gevent.signal_handler(signal.SIGTERM, handle)
    gevent.signal_handler(signal.SIGINT, handle)


def _hand_over(rt: Runtime, lease: Lease, group: gevent.pool.Group, sink: gevent.Greenlet) -> None:
    """SIGTERM while active: the last write, then the lease goes at once (a standby takes over at its next try,
    well within 1 s), then the rest of the greenlets get their grace."""
    sink.kill(block=True, timeout=1.0)  # no write in flight beside ours
    rt.sink.write_once(confirmations=True)
    try:
        rt.store.put_status({**build_status(rt), "stopped_at": now_ms()})
    except (*STORE_ERRORS, LeaseLost) as exc:
        log.warning("final status write failed: %s", exc)
    try:
        lease.release()
        log.info("writer lease released (epoch %s)", rt.epoch)
    except LEASE_ERRORS as exc:
        log.warning("could not release the writer lease (it expires by itself): %s", exc)
    rt.store.fence = None
    group.kill(block=True, timeout=STOP_GRACE_S)


def _start_followers(rt: Runtime) -> tuple[gevent.pool.Group, list[gevent.Greenlet]]:
    """History (worker/history) and alerts (worker/alerts) live across tenures: paused until this worker takes the
    writer lease, so a standby records and sends nothing. A crash of their greenlets stops the worker like any
    other."""
    group = gevent.pool.Group()
    crashed: list[gevent.Greenlet] = []

    def on_crash(greenlet: gevent.Greenlet) -> None:
        log.error("greenlet %s crashed; stopping", greenlet.name, exc_info=greenlet.exc_info)
        crashed.append(greenlet)
        rt.stop.set()

    for name, func, arg in [*attach_history(rt), *attach_alerts(rt)]:
        greenlet = gevent.Greenlet(func, arg)
        greenlet.name = name
        greenlet.link_exception(on_crash)
        group.start(greenlet)
    if rt.history is not None:
        rt.history.pause()
    if rt.alerts is not None:
        rt.alerts.pause()
    return group, crashed


def _run_active(rt: Runtime, lease: Lease) -> bool:
    """One tenure as the writer, until SIGTERM or the lease is lost to another worker. True if a greenlet crashed."""
    rt.begin_tenure()
    log.info("writer lease taken: epoch %s; connecting upstream", rt.epoch)
    if rt.history is not None:  # history records only while this worker writes: fed by this tenure's sink
        rt.history.seed(rt.sink_snapshots())
        rt.sink.on_written = rt.history.offer
        rt.history.resume()
    if rt.alerts is not None:  # one evaluator: the writer's. Epoch 1 is the store's first writer ever; any later
        rt.sink.on_alerts = rt.alerts.offer  # epoch took over from a previous one (a standby, or a restart)
        rt.alerts.resume(took_over=(rt.epoch or 0) > 1)
    tenure = gevent.event.Event()
    rt.sink.write_once(confirmations=True)  # publish the tracked list (and any resumed data) right away
    crashed: list[gevent.Greenlet] = []

    def on_crash(greenlet: gevent.Greenlet) -> None:
        log.error("greenlet %s crashed; stopping", greenlet.name, exc_info=greenlet.exc_info)
        crashed.append(greenlet)
        rt.stop.set()

    group = gevent.pool.Group()
    jobs: list[tuple[str, Any, tuple[Any, ...]]] = [
        ("sink", rt.sink.run, (tenure,)), ("lease", keep, (rt, lease, tenure)),
        ("status", _status_loop, (rt, tenure)), ("summary", _summary_loop, (rt, tenure))]
    for egress in rt.egresses:
        jobs.append((f"rest:{egress.id}", RestPoller(rt, egress).run, (tenure,)))
        if rt.tuning.ws:
            jobs.append((f"ws:{egress.id}", UpstreamSocket(rt, egress).run, (tenure,)))
    greenlets = {}
    for name, func, args in jobs:
        greenlet = gevent.Greenlet(func, *args)
        greenlet.name = name
        greenlet.link_exception(on_crash)
        group.start(greenlet)
        greenlets[name] = greenlet
    gevent.wait([rt.stop, tenure], count=1)
    if rt.stop.is_set():
        tenure.set()
        _hand_over(rt, lease, group, greenlets["sink"])
    else:  # the lease is someone else's: stop talking to Lighter, wait as a standby again
        if rt.history is not None:
            rt.history.pause()
        if rt.alerts is not None:
            rt.alerts.pause()
        group.kill(block=True, timeout=STOP_GRACE_S)
    return bool(crashed)


def main(settings: Settings, tuning: WorkerTuning, store: Store | None = None) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until a greenlet crashes (exit 1)."""
    rt = Runtime(settings, tuning, store or Store.from_settings(settings))
    gevent.get_hub().exception_stream = _LogStream()
    _install_signals(rt)
    log.info("worker starting: %d account(s) over %d egress(es), store=%s, upstream=%s, ws=%s",
             len(rt.accounts), len(rt.egresses), rt.store.kind, settings.lighter_base_url,
             "on" if tuning.ws else "off")
    for egress in rt.egresses:
        log.info("egress %s (%s): accounts %s, budget %s/%s, intervals poll %.2fs orders %.2fs%s",
                 egress.id, egress.proxy.redacted if egress.proxy else "no proxy",
                 [a.account_index for a in egress.accounts], egress.budget.per_window or "unlimited",
                 per_window(egress.budget.window_s),
                 egress.plan.poll, egress.plan.orders, " (stretched)" if egress.plan.stretched else "")
    _prime_tokens(rt)  # offline (the signer): no upstream request, so a standby does it too
    followers, followers_crashed = _start_followers(rt)
    frozen = freeze_startup_heap()  # core/heap.py: full collections then skip everything made during start
    log.debug("gc: %d start-up objects frozen", frozen)
    lease = rt.store.lease(new_owner(), tuning.lease_ttl_s)
    crashed = False
    while not crashed and wait_as_standby(rt, lease):
        crashed = _run_active(rt, lease)
    rt.stop.set()
    followers.join(timeout=STOP_GRACE_S)  # the recorder's final flush (only while it still records)
    followers.kill(block=True, timeout=1.0)
    crashed = crashed or bool(followers_crashed)
    for egress in rt.egresses:
        egress.close()
    log.info("worker stopped%s", " after a crash" if crashed else "")
    return 1 if crashed else 0
