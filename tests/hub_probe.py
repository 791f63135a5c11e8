"""Does a piece of work block the gevent hub? One probe for every suite that asks (history, alerts...).

Run as `python -m tests.hub_probe` in a subprocess of its own (`probe()` below does that; not as a file path,
which would put tests/ first on sys.path, where tests/core shadows core): a heartbeat greenlet ticks every 10 ms while
the work runs; the last line printed is JSON: what the work returned, plus `elapsed_ms` (how long the work ran) and
`max_gap_ms` (the longest gap between ticks). A blocked hub shows the whole work as one gap.

argv: <"patched" | "unpatched"> <module:function> [args...]. "patched" applies gevent's monkey patching before
anything else is imported, as the worker and the web do; "unpatched" is the control, where blocking I/O holds the
hub. `module:function` is called untimed with the remaining args (strings) to set up, and returns the work: a
callable that returns a JSON-able dict.
"""
from __future__ import annotations

import sys
from typing import Any

# Nothing else at module level: in the script, monkey patching must come before socket/threading are imported.


def probe(mode: str, prepare: str, *args: str) -> dict[str, Any]:
    """Run the probe in a fresh interpreter (patching is per process) and return its JSON result."""
    import subprocess

    import orjson

    from tests.paths import ROOT

    done = subprocess.run([sys.executable, "-m", "tests.hub_probe", mode, prepare, *args], cwd=ROOT,
                          capture_output=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def main(mode: str, prepare: str, *args: str) -> None:
    if mode == "patched":
        from gevent import monkey

        monkey.patch_all()
    import importlib
    import time

    import gevent
    import orjson

    module, function = prepare.split(":")
    work = getattr(importlib.import_module(module), function)(*args)
    gaps: list[float] = []
    ticking = True

    def heartbeat() -> None:
        last = time.perf_counter()
        while ticking:
            gevent.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = gevent.spawn(heartbeat)
    gevent.sleep(0.05)
    started = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - started
    gevent.sleep(0.05)
    ticking = False
    ticker.join()
    print(orjson.dumps({**result, "elapsed_ms": elapsed * 1000, "max_gap_ms": max(gaps) * 1000}).decode())


if __name__ == "__main__":
    main(*sys.argv[1:])
