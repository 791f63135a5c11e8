"""Delivery of one message to one destination: Standard Webhooks (signed JSON over HTTP) or apprise.

Both block their caller only: under gevent's monkey patching, requests (used by us and by apprise) waits
cooperatively (tests/alerts/test_gevent.py holds it with a heartbeat greenlet). apprise's import (~0.5 s) and its
first `add` (it loads its plugins: ~0.4 s of CPU) would stall the hub inside a delivery: both happen at start
(`warm_up`, called by worker/alerts and app/rest/alerts).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import requests
from standardwebhooks import Webhook

from core.alerts.evaluate import SERVICE, Alert
from core.alerts.rules import Destination

PAYLOAD_VERSION = 1
USER_AGENT = "lighter-broadcaster-alerts/1"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    code: int | None = None      # the HTTP status (webhooks)
    error: str | None = None     # redacted


def payload(alert: Alert, account_name: str | None, public_url: str) -> dict[str, Any]:
    """The JSON body (docs/alerts.md#payload)."""
    link = None
    if public_url:
        link = f"{public_url}/" if alert.account == SERVICE else f"{public_url}/#account-{alert.account}"
    return {"version": PAYLOAD_VERSION, "id": alert.id, "event": alert.when, "rule": alert.rule, "at": alert.at,
            "account": None if alert.account == SERVICE else {"index": alert.account, "name": account_name},
            "market_id": alert.market, "values": alert.values, "link": link}


def summary(body: dict[str, Any]) -> tuple[str, str]:
    """A title and a short text for chat and mail."""
    account = body.get("account") or {}
    who = f"account {account.get('name') or account.get('index')}" if account else "service"
    title = f"[{body['rule']}] {body['event']} — {who}"
    values = body.get("values") or {}
    parts = [f"{k}={v}" for k, v in values.items() if k != "events"]
    text = ", ".join(parts) or body["event"]
    if body.get("link"):
        text += f"\n{body['link']}"
    return title, text


def warm_up() -> None:
    """Import apprise and load its plugins now (CPU-bound, once per process), not during the first delivery.
    Imported lazily: a process without apprise destinations does not pay for it."""
    import apprise

    apprise.Apprise().add("json://localhost")


def send(destination: Destination, event_id: str, body: str, timeout_s: float) -> Outcome:
    try:
        if destination.kind == "webhook":
            return _webhook(destination, event_id, body, timeout_s)
        return _apprise(destination, orjson.loads(body))
    except Exception as exc:  # noqa: BLE001 - any failure is a failed attempt, retried; never raised past here
        # The type only: an exception's text can quote the URL (and the token in its path).
        return Outcome(False, None, type(exc).__name__)


def _webhook(destination: Destination, event_id: str, body: str, timeout_s: float) -> Outcome:
    assert destination.secret is not None  # rules.parse requires it for webhooks
    now = datetime.now(tz=UTC)
    signature = Webhook(destination.secret.reveal()).sign(event_id, now, body)
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, "webhook-id": event_id,
               "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    response = requests.post(destination.url.reveal(), data=body.encode(), headers=headers, timeout=timeout_s,
                             allow_redirects=False)
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}")


def _apprise(destination: Destination, body: dict[str, Any]) -> Outcome:
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(destination.url.reveal()):
        return Outcome(False, None, "apprise does not understand this URL")
    title, text = summary(body)
    ok = bool(notifier.notify(title=title, body=text))
    return Outcome(ok, None, None if ok else "apprise reported a failed notification")


def retry_delay(attempts: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Capped exponential backoff with jitter: base * 2^(attempts-1), at most cap, times a factor in [0.5, 1]."""
    raw = min(cap_s, base_s * float(2 ** max(0, attempts - 1)))
    factor = rng.random() if rng is not None else random.random()
    return raw * (0.5 + 0.5 * factor)
