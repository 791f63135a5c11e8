"""GET /api/alerts and POST /api/alerts/test on the real web (gunicorn), with a seeded SQLite outbox and a real
receiver: rules, last fired, the delivery log with codes and attempts; no destination URL or secret ever shown.
/api/status's `alerts` section as the OpenAPI document describes it (its `Status` schema), outbox readable or not."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis

from app.rest.openapi import document
from core.alerts.outbox import AlertOutbox
from core.history.db import HistoryDB
from tests.alerts.receiver import SECRET, Receiver, receiving
from tests.fixtures.web import WebServer, run_web

TOKEN = "alerts-api-token-123456"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCOUNT = 7
# Status code, content type and body against the document /api/openapi.json serves (schemathesis's checks).
STATUS_OPERATION = schemathesis.openapi.from_dict(document())["/api/status"]["GET"]


def rules(port: int) -> str:
    return f"""
[destinations.ops]
webhook = "http://127.0.0.1:{port}/hook?token=HOOKSECRET"
secret = "{SECRET}"
[destinations.chat]
apprise = "json://127.0.0.1:{port}/chat?token=CHATSECRET"

[[rules]]
name = "margin"
when = "margin_usage_above"
percent = 80
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebServer, Receiver]]:
    tmp: Path = tmp_path_factory.mktemp("alerts-api")
    url = f"sqlite:///{tmp / 'history.sqlite3'}"
    db = HistoryDB(url)
    db.migrate()
    AlertOutbox(db).add([{"event_id": "alert_1", "destination": "ops", "rule": "margin", "account_index": ACCOUNT,
                          "created_ms": 1_000, "body": "{}", "status": "delivered", "attempts": 3,
                          "next_at_ms": 1_000, "last_code": 200, "last_error": None, "delivered_ms": 5_000},
                         # Retrying (no worker runs here to send it: the web sends worker_down rows only).
                         {"event_id": "alert_2", "destination": "chat", "rule": "margin", "account_index": ACCOUNT,
                          "created_ms": 2_000, "body": "{}", "status": "pending", "attempts": 2,
                          "next_at_ms": 2**53, "last_code": None, "last_error": "ConnectionError",
                          "delivered_ms": None}])
    db.close()
    with receiving() as receiver:
        env = {"DATABASE_URL": url, "CACHE_DIR": str(tmp / "store"), "API_TOKEN": TOKEN, "DOTENV_FILE": "",
               "Lighter_1_a_Account_Index": str(ACCOUNT), "RATE_LIMIT": "10000/minute",
               "ALERTS": rules(receiver.port)}
        with run_web(env) as server:
            yield server, receiver


def test_alerts_view(served: tuple[WebServer, Receiver]) -> None:
    web, _ = served
    response = requests.get(web.url + "/api/alerts", headers=AUTH, timeout=10)
    assert response.status_code == 200, web.log()[-3000:]
    body = response.json()
    # The rule's state is where its newest alert stands.
    assert body["rules"] == [{"name": "margin", "when": "margin_usage_above", "to": ["ops", "chat"],
                              "cooldown_s": 300.0, "threshold": 80.0, "clear": 72.0, "last_fired": 2000,
                              "state": "pending"}]
    assert {d["name"]: d["scheme"] for d in body["destinations"]} == {"ops": "http", "chat": "json"}
    retrying, delivered = body["deliveries"]
    assert (delivered["status"], delivered["attempts"], delivered["last_code"], delivered["destination"]) == \
        ("delivered", 3, 200, "ops")
    assert (retrying["status"], retrying["attempts"], retrying["last_error"]) == ("pending", 2, "ConnectionError")
    assert body["pending"] == 1
    for secret in ("HOOKSECRET", "CHATSECRET", SECRET, "127.0.0.1"):
        assert secret not in response.text
    assert requests.get(web.url + "/api/alerts", timeout=10).status_code == 401


def test_status_has_an_alerts_section(served: tuple[WebServer, Receiver]) -> None:
    web, _ = served
    response = requests.get(web.url + "/api/status", headers=AUTH, timeout=10)
    assert response.status_code == 200, web.log()[-3000:]
    section = response.json()["alerts"]
    assert section == {"rules": 1, "destinations": 2, "outbox": "ok", "backlog": 1, "retrying": 1, "failed": 0,
                       "last_delivered": {"destination": "ops", "rule": "margin", "delivered_ms": 5000,
                                          "attempts": 3, "last_code": 200},
                       "last_failure": {"destination": "chat", "rule": "margin", "status": "pending",
                                        "attempts": 2, "last_code": None, "last_error": "ConnectionError"}}
    for secret in ("HOOKSECRET", "CHATSECRET", SECRET, "127.0.0.1", "hook?", "json://"):
        assert secret not in response.text
    STATUS_OPERATION.validate_response(response)


def test_test_message_to_each_destination(served: tuple[WebServer, Receiver]) -> None:
    web, receiver = served
    assert requests.post(web.url + "/api/alerts/test", timeout=10).status_code == 401
    response = requests.post(web.url + "/api/alerts/test", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    results = {r["destination"]: r for r in response.json()["results"]}
    assert results["ops"]["ok"] and results["ops"]["status_code"] == 200 and results["chat"]["ok"]
    hook = [r for r in receiver.delivered() if r.path.startswith("/hook")]
    assert hook and hook[-1].verified and hook[-1].json()["event"] == "test"
    assert any(r.path.startswith("/chat") for r in receiver.delivered())
    assert "HOOKSECRET" not in response.text and "CHATSECRET" not in response.text
    # The receiver failing: 502, its status code shown, no URL.
    receiver.answer = lambda: 500
    try:
        failed = requests.post(web.url + "/api/alerts/test", headers=AUTH, timeout=30)
    finally:
        receiver.answer = lambda: 200
    assert failed.status_code == 502
    assert {r["destination"]: r["status_code"] for r in failed.json()["results"]}["ops"] == 500
    assert "HOOKSECRET" not in failed.text


def test_the_test_route_needs_a_token_configured(tmp_path: Path) -> None:
    with receiving() as receiver:
        env = {"CACHE_DIR": str(tmp_path / "store"), "DOTENV_FILE": "", "Lighter_1_a_Account_Index": str(ACCOUNT),
               "DATABASE_URL": f"sqlite:///{tmp_path / 'h.sqlite3'}", "ALERTS": rules(receiver.port)}
        with run_web(env) as web:
            response = requests.post(web.url + "/api/alerts/test", timeout=10)
            assert response.status_code == 403 and response.json()["status"] == 403
            view = requests.get(web.url + "/api/alerts", timeout=10).json()
            assert view["outbox"] == "unavailable" and view["rules"][0]["name"] == "margin"  # not migrated yet
            status = requests.get(web.url + "/api/status", timeout=10)
            assert status.json()["alerts"] == {"rules": 1, "destinations": 2, "outbox": "unavailable",
                                               "backlog": None, "retrying": None, "failed": None,
                                               "last_delivered": None, "last_failure": None}
            STATUS_OPERATION.validate_response(status)
        assert receiver.requests == []
