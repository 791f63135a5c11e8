"""The failure budget and WebSocket admission (app/guard.py) on limits' memory storage, and the WSGI layer."""
from __future__ import annotations

import json

import pytest
from limits.storage import MemoryStorage

from app.guard import Admission, FailureBudget, Guard, Middleware
from core.env import SettingsError
from core.tuning import WebTuning, web_from_env


def test_an_address_is_blocked_once_its_failures_are_spent_and_others_are_not() -> None:
    budget = FailureBudget(MemoryStorage(), failures=3, window_s=30)
    assert [budget.fail("10.0.0.1") for _ in range(3)] == [True, True, False]
    wait = budget.blocked("10.0.0.1")
    assert wait is not None and 1 <= wait <= 30
    assert budget.blocked("10.0.0.2") is None and budget.fail("10.0.0.2")


def test_two_processes_on_one_storage_share_the_count() -> None:
    storage = MemoryStorage()  # stands for Redis: the same `limits` storage behind both
    first, second = FailureBudget(storage, 2, 30), FailureBudget(storage, 2, 30)
    assert first.fail("10.0.0.1")
    assert second.blocked("10.0.0.1") is None  # not known there until its own next failure...
    assert not second.fail("10.0.0.1")          # ...which finds the budget spent
    assert second.blocked("10.0.0.1") is not None


def test_admission_is_paced_per_address_and_in_total() -> None:
    admission = Admission(per_s=5, per_address_per_s=3)
    assert [admission.admit("a") for _ in range(4)] == [True, True, True, False]
    assert [admission.admit("b") for _ in range(3)] == [True, True, False]  # 3 + 2 = the 5 in total


def _call(app, environ: dict) -> tuple[str, dict[str, str], bytes]:  # noqa: ANN001
    seen: dict = {}

    def start_response(status: str, headers: list, exc_info=None):  # noqa: ANN001, ANN202
        seen.update(status=status, headers=dict(headers))

    body = b"".join(app(environ, start_response))
    return seen["status"], seen["headers"], body


def test_the_wsgi_layer_counts_401s_and_answers_a_spent_address_with_json_429() -> None:
    statuses = iter(["401 UNAUTHORIZED", "401 UNAUTHORIZED", "200 OK"])

    def inner(environ, start_response):  # noqa: ANN001, ANN202
        start_response(next(statuses), [("Content-Type", "application/json")])
        return [b"{}"]

    tuning = WebTuning(auth_failures=2, auth_failure_window_s=60)
    app = Middleware(inner, Guard(MemoryStorage(), tuning))
    environ = {"REMOTE_ADDR": "10.0.0.9", "PATH_INFO": "/metrics"}
    assert _call(app, environ)[0].startswith("401")
    assert _call(app, environ)[0].startswith("401")
    status, headers, body = _call(app, environ)  # the inner app would say 200: never asked
    assert status.startswith("429") and int(headers["Retry-After"]) >= 1
    assert json.loads(body)["status"] == 429
    assert _call(app, {**environ, "REMOTE_ADDR": "10.0.0.10"})[0] == "200 OK"


@pytest.mark.parametrize("name", ["WEB_WS_BACKLOG_BYTES", "WEB_AUTH_FAILURES", "WEB_AUTH_FAILURE_WINDOW_S",
                                  "WEB_WS_ADMIT_PER_S", "WEB_WS_ADMIT_PER_ADDRESS_PER_S", "WEB_CONNS_PER_ADDRESS",
                                  "WEB_HEADER_TIMEOUT_S", "WEB_STREAM_AUTH_TIMEOUT_S"])
def test_a_bad_edge_setting_stops_the_start_naming_it(name: str) -> None:
    for bad in ("0", "-1", "abc", "inf"):
        with pytest.raises(SettingsError, match=name):
            web_from_env({name: bad})
