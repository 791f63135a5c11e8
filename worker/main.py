"""Worker process wiring: long-lived greenlets in one group, crash = exit non-zero, SIGTERM = clean stop."""
from __future__ import annotations

import logging
import os
import signal

import gevent
import gevent.pool

from core.settings import Settings
from core.snapshot import now_ms
from core.store import Store
from core.tuning import WorkerTuning
from worker.alerts import attach as attach_alerts
from worker.history import attach as attach_history
from worker.runtime import Runtime
from worker.sink import STORE_ERRORS
from worker.status import build_status, log_summary
from worker.upstream.budget import per_window
from worker.upstream.rest import RestPoller
from worker.upstream.tokens import TokenError
from worker.upstream.ws import UpstreamSocket

log = logging.getLogger(__name__)
STOP_GRACE_S = 3.0  # of the 5 s we promise: greenlets get this long, then the final writes


def _status_loop(rt: Runtime) -> None:
    failing = False
    while True:
        try:
            rt.store.put_status(build_status(rt))
            failing = False
        except STORE_ERRORS as exc:
            if not failing:  # log the outage once, not once a second
                log.warning("status write failed (store down?): %s", exc)
            failing = True
            rt.record_error("store", f"status write failed: {exc}")
        if rt.stop.wait(rt.tuning.status_every_s):
            return


def _summary_loop(rt: Runtime) -> None:
    period = rt.tuning.summary_every_s
    while not rt.stop.wait(period):
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


def _shutdown(rt: Runtime, group: gevent.pool.Group) -> None:
    group.kill(block=True, timeout=STOP_GRACE_S)
    rt.sink.write_once(confirmations=True)
    try:
        rt.store.put_status({**build_status(rt), "stopped_at": now_ms()})
    except STORE_ERRORS as exc:
        log.warning("final status write failed: %s", exc)
    for egress in rt.egresses:
        egress.close()


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
    rt.sink.write_once(confirmations=True)  # publish the tracked list (and any resumed data) right away
    _prime_tokens(rt)
    crashed: list[gevent.Greenlet] = []

    def on_crash(greenlet: gevent.Greenlet) -> None:
        log.error("greenlet %s crashed; stopping", greenlet.name, exc_info=greenlet.exc_info)
        crashed.append(greenlet)
        rt.stop.set()

    group = gevent.pool.Group()
    jobs = [("sink", rt.sink.run, rt.stop), ("status", _status_loop, rt), ("summary", _summary_loop, rt)]
    jobs += attach_history(rt)  # history: fed by the sink, writes the database (worker/history)
    jobs += attach_alerts(rt)  # alerts: fed by the sink, outbox in the history database (worker/alerts)
    for egress in rt.egresses:
        jobs.append((f"rest:{egress.id}", RestPoller(rt, egress).run, rt.stop))
        if tuning.ws:
            jobs.append((f"ws:{egress.id}", UpstreamSocket(rt, egress).run, rt.stop))
    for name, func, arg in jobs:
        greenlet = gevent.Greenlet(func, arg)
        greenlet.name = name
        greenlet.link_exception(on_crash)
        group.start(greenlet)
    rt.stop.wait()
    _shutdown(rt, group)
    log.info("worker stopped%s", " after a crash" if crashed else "")
    return 1 if crashed else 0
