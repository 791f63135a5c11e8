"""Push for the file store: the web's watcher learns that `head` moved from inotify, not by polling it.

The worker writes each file of the store (cachelib's FileSystemCache) to a temporary file and renames it into
place, and writes `head` last; the kernel reports each rename into the store directory (IN_MOVED_TO). A
`HeadNotifier` watches that directory and wakes its greenlet when the file holding `head` is replaced.

gevent: the inotify descriptor is opened non-blocking and waited on with `gevent.socket.wait_read` (a libev I/O
watcher on the hub), then drained with inotify_simple's `read(timeout=0)`, which only reads what FIONREAD says is
there (an ioctl and one read, never a wait): the hub is never blocked. Where inotify cannot be used (not Linux,
the per-user watch limit reached) `open_notifier` returns None and the follower polls `head` as before.
"""
from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)
# What a finished write of a store file looks like: a rename into the directory (cachelib), or a file closed
# after writing (a backend that writes in place).
_MASK_NAMES = ("MOVED_TO", "CLOSE_WRITE")


class HeadNotifier:
    """Waits for the file named `head_name` in `directory` to be replaced (any file, when `head_name` is None)."""

    def __init__(self, inotify: Any, directory: str, head_name: str | None) -> None:
        from inotify_simple import flags

        self._inotify = inotify
        self._head_name = head_name
        self._mask = 0
        for name in _MASK_NAMES:
            self._mask |= getattr(flags, name)
        self._overflow = int(flags.Q_OVERFLOW)
        self._inotify.add_watch(directory, self._mask)

    def wait(self, timeout: float) -> bool:
        """Block this greenlet (never the hub) until `head` was replaced or `timeout` s passed; True if it was (or
        may have been: the kernel's queue overflowed)."""
        from gevent.socket import wait_read

        if self._drain():
            return True
        try:
            wait_read(self._inotify.fileno(), timeout=timeout)
        except TimeoutError:
            return False
        except OSError:
            return True  # anything odd: let the caller read head
        return self._drain()

    def _drain(self) -> bool:
        """Read every pending event (never waits); True if one was about `head`."""
        hit = False
        for event in self._inotify.read(timeout=0):
            if event.mask & self._overflow or self._head_name is None or event.name == self._head_name:
                hit = True
        return hit

    def close(self) -> None:
        self._inotify.close()


def open_notifier(directory: str, head_path: str | None) -> HeadNotifier | None:
    """A notifier for the store in `directory` (`head_path`: the file holding head), or None (poll instead)."""
    try:
        from inotify_simple import INotify

        inotify = INotify(nonblocking=True)
    except (ImportError, OSError) as exc:
        log.info("file store: no inotify here (%s); following head by polling", exc)
        return None
    try:
        return HeadNotifier(inotify, directory, os.path.basename(head_path) if head_path else None)
    except OSError as exc:
        inotify.close()
        log.warning("file store: cannot watch %s (%s); following head by polling", directory, exc)
        return None
