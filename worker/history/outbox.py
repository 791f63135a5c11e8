"""The bounded outbox: history rows waiting for the database, in arrival order, bounded in rows and in bytes.

Past either bound the oldest rows are dropped and counted (`dropped`): the live broadcast never waits for history.
"""
from __future__ import annotations

import logging
from collections import deque

import orjson

from core.snapshot import Row

log = logging.getLogger(__name__)
Item = tuple[str, Row, int]  # table name, row, encoded size in bytes


class Outbox:
    def __init__(self, max_rows: int, max_bytes: int) -> None:
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._items: deque[Item] = deque()
        self.bytes = 0
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, table: str, row: Row) -> None:
        self._items.append((table, row, len(orjson.dumps(row))))
        self.bytes += self._items[-1][2]
        self._trim()

    def take(self, limit: int) -> list[Item]:
        """The oldest `limit` rows, removed (give them back with `restore` if writing them failed)."""
        batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
        self.bytes -= sum(item[2] for item in batch)
        return batch

    def restore(self, batch: list[Item]) -> None:
        """Put a failed batch back in front, in its order; the bounds still hold (the oldest go first)."""
        self._items.extendleft(reversed(batch))
        self.bytes += sum(item[2] for item in batch)
        self._trim()

    def _trim(self) -> None:
        before = self.dropped
        while self._items and (len(self._items) > self.max_rows or self.bytes > self.max_bytes):
            self.bytes -= self._items.popleft()[2]
            self.dropped += 1
        if self.dropped > before and (before == 0 or self.dropped // 1000 > before // 1000):  # first, then per 1000
            log.error("history outbox full (%d rows, %d bytes): %d oldest rows dropped so far",
                      self.max_rows, self.max_bytes, self.dropped)
