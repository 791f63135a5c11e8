"""Run in a subprocess: deliver to a slow receiver while a heartbeat greenlet ticks every 10 ms; print the largest
gap between ticks. argv: webhook_url apprise_url mode ("patched": gevent's monkey patching, as the worker runs;
"unpatched": the control, where requests blocks the hub)."""
import sys

if sys.argv[3] == "patched":
    from gevent import monkey

    monkey.patch_all()

import time

import gevent
import orjson

from core.alerts.deliver import send, warm_up
from core.alerts.rules import Destination
from core.env import Secret
from tests.alerts.receiver import SECRET

gaps: list[float] = []


def heartbeat() -> None:
    last = time.monotonic()
    while True:
        gevent.sleep(0.01)
        now = time.monotonic()
        gaps.append(now - last)
        last = now


warm_up()  # as the worker does at start
beat = gevent.spawn(heartbeat)
gevent.sleep(0.05)
started = time.monotonic()
hook = send(Destination("ops", "webhook", Secret(sys.argv[1]), Secret(SECRET)), "alert_probe", '{"a":1}', 10)
chat = send(Destination("chat", "apprise", Secret(sys.argv[2])), "alert_probe", '{"event":"t","rule":"r"}', 10)
elapsed = time.monotonic() - started
gevent.sleep(0.05)
beat.kill()
print(orjson.dumps({"ok": [hook.ok, chat.ok], "elapsed_ms": elapsed * 1000,
                    "max_gap_ms": max(gaps) * 1000}).decode())
