"""The writer lease from the worker's side: wait as a standby, keep the lease while active, heal the store.

A worker starts as a standby. It tries the lease every `WORKER_STANDBY_POLL_S`, opens no upstream connection and
spends no Lighter budget meanwhile (cold but ready: settings loaded, signer loaded, tokens minted offline), and
says it is there in the store's `standby` record. Once it holds the lease it is the active writer until it stops
(SIGTERM: final write, then the lease is released, so a standby takes over at its next try) or loses the lease.

While active, `keep` renews the lease every `WORKER_LEASE_RENEW_S` and, in the same beat, checks that the store
still holds what was written (tracked list, head, every account key readable): if not, the sink rewrites
everything. A lease found gone (Redis flushed or restarted empty, CACHE_DIR deleted) is re-taken at once with a
new epoch, followed by the same rewrite; a lease held by another worker ends this tenure: the worker steps down
to standby, and the store has refused its writes since the moment the lease changed hands.
"""
from __future__ import annotations

import logging
import time

import gevent.event
from redis.exceptions import RedisError

from core.lease import Lease
from core.store import StoreError
from worker.runtime import Runtime

log = logging.getLogger(__name__)
LEASE_ERRORS = (StoreError, RedisError, OSError)


def try_acquire(rt: Runtime, lease: Lease) -> bool:
    """One try; on success the worker is the active writer and the store fences its writes with `lease`."""
    observe(rt)
    if not lease.acquire(max(rt.epoch_seen, rt.epoch or 0)):
        return False
    rt.epoch = rt.epoch_seen = lease.epoch or 0
    rt.role = "active"
    rt.store.fence = lease
    return True


def observe(rt: Runtime) -> None:
    """Remember the highest epoch and seq the store shows (the status record and head): floors, so that neither
    repeats after the store was wiped, whoever takes over."""
    try:
        status = rt.store.status() or {}
        head = rt.store.head()
    except LEASE_ERRORS:
        return
    epoch, seq = status.get("epoch"), (status.get("store") or {}).get("seq")
    rt.epoch_seen = max(rt.epoch_seen, epoch if isinstance(epoch, int) else 0)
    rt.seq_seen = max(rt.seq_seen, seq if isinstance(seq, int) else 0, head)
    if rt.role == "standby":
        # The last good data of each account, kept while waiting: a standby that wins the lease after the store
        # was wiped (FLUSHALL, Redis back empty) starts from it instead of publishing empty accounts.
        for index in rt.accounts:
            try:
                snapshot = rt.store.account(index)
            except LEASE_ERRORS:
                return
            if snapshot is not None:
                rt.seen_snapshots[index] = snapshot


def wait_as_standby(rt: Runtime, lease: Lease) -> bool:
    """Block (gevent) until this worker holds the lease (True) or is told to stop (False)."""
    rt.role, rt.epoch, rt.store.fence = "standby", None, None
    said = None
    last_record = float("-inf")
    failing = False
    while not rt.stop.is_set():
        try:
            if try_acquire(rt, lease):
                return True
            holder = lease.holder()
            if time.monotonic() - last_record >= rt.tuning.status_every_s:
                last_record = time.monotonic()
                rt.store.put_standby({"pid": rt.pid, "started_at": rt.started_at, "role": "standby",
                                      "active_epoch": holder.epoch if holder else None})
            if holder is not None and said != holder.epoch:
                said = holder.epoch
                log.info("standby: epoch %d writer %s holds the lease; taking over when it goes", holder.epoch,
                         holder.owner)
            failing = False
        except LEASE_ERRORS as exc:
            if not failing:
                log.warning("standby: store unavailable, retrying: %s", exc)
            failing = True
        rt.stop.wait(rt.tuning.standby_poll_s)
    return False


def keep(rt: Runtime, lease: Lease, tenure: gevent.event.Event) -> None:
    """Renew the lease and check the store until the tenure ends; sets `tenure` when the lease is someone else's."""
    tuning = rt.tuning
    proven_at = time.monotonic()
    failing = False
    while not tenure.is_set():
        rt.lease_trouble.wait(tuning.lease_renew_s)
        rt.lease_trouble.clear()
        if tenure.is_set():
            return
        try:
            if lease.renew():
                proven_at = time.monotonic()
                rt.seq_seen = max(rt.seq_seen, rt.sink.seq or 0)
                if not rt.sink.healthy:  # the store answers again: rewrite now, not at the sink's next backoff
                    rt.sink.heal("its contents during an outage")
                elif lost := rt.store.lost(list(rt.accounts), rt.sink.seq):
                    rt.sink.heal(lost)
            elif try_acquire(rt, lease):  # the lease vanished with the store's contents: take a new one
                log.warning("writer lease was gone from the store (wiped?); taken again as epoch %s", lease.epoch)
                rt.record_error("store", f"writer lease lost; taken again as epoch {lease.epoch}")
                rt.sink.heal("the writer lease")
            else:
                holder = lease.holder()
                log.warning("writer lease now held by %s; stepping down to standby",
                            f"epoch {holder.epoch} ({holder.owner})" if holder else "another worker")
                rt.record_error("store", "writer lease taken by another worker; standing by")
                tenure.set()
                return
            failing = False
        except LEASE_ERRORS as exc:
            if not failing:
                log.warning("lease renewal failed (store down?): %s", exc)
            failing = True
            if time.monotonic() - proven_at > tuning.lease_ttl_s:
                # Cannot prove the lease any more: writes are refused by the store anyway (fenced), and the
                # status says so until a renewal or a re-take succeeds.
                rt.sink.healthy = False
