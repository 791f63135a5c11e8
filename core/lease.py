"""The writer lease: at most one worker writes the store at a time, and the store refuses a deposed writer.

Redis: the key `lb:lease` holds `<epoch>:<owner>` with an expiry (`WORKER_LEASE_TTL_S`). It is taken only when
absent (a Lua script: check, bump `lb:epoch`, set, in one step), renewed by its holder, deleted by its holder on a
clean stop. Every write of the holder runs as a script that first compares `lb:lease` with the holder's token (the
fencing token) and writes nothing if it differs: a worker that paused past its expiry, or whose Redis was
flushed, cannot write over its successor, whatever the timing.

File store: `CACHE_DIR/writer.lock` held with `flock(LOCK_EX | LOCK_NB)`. The kernel drops the lock when its
holder dies (kill -9 included), so a standby takes over on its next try. Non-blocking on purpose: a blocking
flock would stall the gevent hub; standbys retry with a gevent sleep instead. Before every write the holder checks
that the lock file on disk is still the inode it locked: if CACHE_DIR was deleted (or the lock file replaced),
the lease is lost and the worker re-takes it, which recreates the directory. The check and the write are two
steps, so the file store's fence holds against a successor with an intact directory (flock), not against a
writer racing a concurrent `rm -rf` by microseconds.

The epoch (writer tenure) goes up by one with every acquisition; it never goes back, even when the store was
wiped, because a worker passes the highest epoch it has seen as a floor.
"""
from __future__ import annotations

import errno
import fcntl
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

LEASE_KEY = "lease"        # under the store's key prefix
EPOCH_KEY = "epoch"
LOCK_FILE = "writer.lock"

_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if epoch <= floor then epoch = floor + 1; redis.call('SET', KEYS[2], epoch) end
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
return epoch
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class LeaseLost(RuntimeError):
    """This worker no longer holds the writer lease: the store refused (or would refuse) its write."""


def new_owner() -> str:
    """Who holds a lease: host and pid for people, a random part so a reused pid is never mistaken."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Holder:
    epoch: int
    owner: str


def _holder(raw: str) -> Holder | None:
    epoch, _, owner = raw.strip().partition(":")
    return Holder(int(epoch), owner) if epoch.isdigit() else None


class RedisLease:
    """The lease as a Redis key with an expiry; `token` is what every fenced write presents."""

    def __init__(self, client: Any, prefix: str, ttl_s: float, owner: str) -> None:
        self._client = client
        self.key = prefix + LEASE_KEY
        self._epoch_key = prefix + EPOCH_KEY
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self.owner = owner
        self.epoch: int | None = None
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def token(self) -> str:
        return f"{self.epoch}:{self.owner}"

    def acquire(self, floor: int = 0) -> bool:
        epoch = int(self._acquire(keys=[self.key, self._epoch_key], args=[self.owner, self._ttl_ms, floor]))
        self.epoch = epoch or None
        return bool(epoch)

    def renew(self) -> bool:
        """Extend the expiry; False (and the lease dropped) if the key is gone or someone else's."""
        if self.epoch is None:
            return False
        if int(self._renew(keys=[self.key], args=[self.token, self._ttl_ms])):
            return True
        self.epoch = None
        return False

    def check(self) -> None:
        """Redis fences inside each write script; nothing to check beforehand."""
        if self.epoch is None:
            raise LeaseLost("no writer lease")

    def release(self) -> None:
        if self.epoch is not None:
            self._release(keys=[self.key], args=[self.token])
            self.epoch = None

    def holder(self) -> Holder | None:
        raw = self._client.get(self.key)
        return None if raw is None else _holder(raw.decode(errors="replace"))


class FileLease:
    """The lease as an flock on `CACHE_DIR/writer.lock`, which also records the epoch and the holder."""

    def __init__(self, directory: str, owner: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_FILE)
        self.owner = owner
        self.epoch: int | None = None
        self._fd: int | None = None

    def acquire(self, floor: int = 0) -> bool:
        """One non-blocking try. Recreates the directory (mode 0700) if it is gone."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        previous = _holder(os.pread(fd, 200, 0).decode(errors="replace"))
        epoch = max(previous.epoch if previous else 0, floor) + 1
        record = f"{epoch}:{self.owner}\n".encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd, self.epoch = fd, epoch
        return True

    def renew(self) -> bool:
        try:
            self.check()
            return True
        except LeaseLost:
            return False

    def check(self) -> None:
        """Raise LeaseLost unless the lock file on disk is the one we hold locked."""
        if self._fd is None:
            raise LeaseLost("no writer lease")
        try:
            on_disk = os.stat(self.path)
        except OSError:
            on_disk = None
        held = os.fstat(self._fd)
        if on_disk is None or (on_disk.st_ino, on_disk.st_dev) != (held.st_ino, held.st_dev):
            self._drop()
            raise LeaseLost(f"{self.path} is gone or replaced")

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{self.epoch}:\n".encode(), 0)  # keep the epoch for the successor
            self._drop()

    def _drop(self) -> None:
        fd, self._fd, self.epoch = self._fd, None, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock

    def holder(self) -> Holder | None:
        """Who holds the lock now (None if nobody: a shared lock we can take means no writer holds it)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return None
            except OSError:
                pass
            found = _holder(os.pread(fd, 200, 0).decode(errors="replace"))
        finally:
            os.close(fd)  # also drops the shared lock, if we took it
        return found if found and found.owner else None


Lease = RedisLease | FileLease
