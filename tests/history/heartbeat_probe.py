"""Run as a script in a gevent-patched process (like the worker and the web): a heartbeat greenlet ticks every
10 ms while one slow query runs through HistoryDB; prints the longest gap between ticks in ms (JSON).

argv: <database url> <"offload" | "direct">: "direct" runs the same query on the hub without offloading (the
control that shows the probe can see a blocked hub).
"""
from gevent import monkey; monkey.patch_all()  # noqa: E702,I001 - before anything imports socket/threading

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import text  # noqa: E402

from core.history.db import HistoryDB  # noqa: E402

SLOW_SQLITE = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 4000000) "
               "SELECT count(*) FROM n")
SLOW_PG = "SELECT pg_sleep(0.6)"


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    db = HistoryDB(url)
    query = SLOW_SQLITE if db.dialect == "sqlite" else SLOW_PG
    gaps: list[float] = []
    running = True

    def heartbeat() -> None:
        last = time.perf_counter()
        while running:
            gevent.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    def slow() -> None:
        with db.engine.connect() as conn:
            conn.execute(text(query)).scalar()

    ticker = gevent.spawn(heartbeat)
    gevent.sleep(0.05)
    started = time.perf_counter()
    if mode == "offload":
        db.offload(slow)
    else:
        slow()
    took = time.perf_counter() - started
    gevent.sleep(0.05)
    running = False
    ticker.join()
    print(orjson.dumps({"query_ms": took * 1000, "max_gap_ms": max(gaps) * 1000}).decode())


if __name__ == "__main__":
    main()
