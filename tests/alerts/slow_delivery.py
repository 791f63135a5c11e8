"""The work tests/alerts/test_gevent.py hands to tests/hub_probe.py: one webhook and one apprise delivery, each to a
slow receiver.

Imported by the probe after gevent's monkey patching, in "patched" mode (never by the test process itself).
"""
from __future__ import annotations

from collections.abc import Callable

from core.alerts.deliver import send, warm_up
from core.alerts.rules import Destination
from core.env import Secret
from tests.alerts.receiver import SECRET


def prepare(webhook_url: str, apprise_url: str) -> Callable[[], dict[str, object]]:
    """Untimed: apprise's plugin loading, as the worker does at start. The work returns whether each arrived."""
    warm_up()
    hook = Destination("ops", "webhook", Secret(webhook_url), Secret(SECRET))
    chat = Destination("chat", "apprise", Secret(apprise_url))

    def work() -> dict[str, object]:
        sent = [send(hook, "alert_probe", '{"a":1}', 10), send(chat, "alert_probe", '{"event":"t","rule":"r"}', 10)]
        return {"ok": [outcome.ok for outcome in sent]}
    return work
