"""REST against the real gunicorn server and a real file store fed the way the worker feeds it."""
from __future__ import annotations

import time

import pytest
import requests

from tests.app.conftest import Feeder
from tests.fixtures.web import run_web
from tests.waiting import wait_for

INT64_MAX = 2**63 - 1


def served_seq(url: str, index: int, seq: int, deadline_s: float = 5.0, **kwargs) -> requests.Response:
    """GET the account until it shows `seq`: REST serves the hub's mirror, one watcher wake-up behind the store
    (like /ws), so a test that just wrote waits for that, with a deadline."""
    end = time.monotonic() + deadline_s
    while True:
        response = requests.get(f"{url}/api/accounts/{index}", timeout=5, **kwargs)
        if response.status_code == 200 and response.json()["seq"] == seq:
            return response
        assert time.monotonic() < end, f"account {index} not at seq {seq}: {response.status_code} {response.text[:200]}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    env = {"CACHE_DIR": str(tmp_path_factory.mktemp("rest") / "store"), "RATE_LIMIT": "1000/minute"}
    feeder = Feeder(env)
    feeder.track([11, 22])
    feeder.status()
    with run_web(env) as web:
        yield web, feeder


def test_health_is_open_and_cheap(served):
    web, feeder = served
    # A live worker's heartbeat: the one the fixture wrote may have aged past 3 s while a loaded machine started
    # the web (CI failed once so), and then the worker rightly reads as down.
    with feeder.beating():
        body = wait_for(lambda: (b := requests.get(web.url + "/health", timeout=5).json())["worker_up"] and b, 5,
                        "/health to see the beating worker")
    assert body["ok"] is True and body["store_reachable"] is True and body["worker_up"] is True


def test_account_bodies_match_the_store(served):
    web, feeder = served
    seq = feeder.put(11, collateral="123.450000")
    response = served_seq(web.url, 11, seq)
    assert response.status_code == 200
    body = response.json()
    stored = feeder.store.account(11)
    assert body["seq"] == seq == stored["seq"]
    assert body["sections"]["summary"]["data"] == stored["sections"]["summary"]["data"]
    assert {"seq", "as_of", "age_ms", "stale"} <= body.keys() and body["stale"] is False
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"] == f'W/"{seq}"'
    assert float(response.headers["X-Poll-Interval"]) == 1.5  # the worker's effective poll interval
    listing = requests.get(f"{web.url}/api/accounts", timeout=5).json()
    assert [a["account_index"] for a in listing["accounts"]] == [11, 22]
    assert listing["accounts"][0]["seq"] == seq


def test_matching_etag_gives_304_not_counted(served):
    web, feeder = served
    first = served_seq(web.url, 22, feeder.put(22))
    remaining = int(first.headers["X-RateLimit-Remaining"])
    for _ in range(5):
        again = requests.get(f"{web.url}/api/accounts/22", headers={"If-None-Match": first.headers["ETag"]},
                             timeout=5)
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == first.headers["ETag"] and "X-Poll-Interval" in again.headers
    # Polls before the web sees the write are 304s (free); the first 200 is the only one counted.
    changed = served_seq(web.url, 22, feeder.put(22), headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] != first.headers["ETag"]
    assert int(changed.headers["X-RateLimit-Remaining"]) == remaining - 1  # the five 304s were free


@pytest.mark.parametrize("raw,status", [("abc", 400), ("-1", 400), ("1.5", 400), (str(INT64_MAX + 1), 400),
                                        ("9" * 40, 400), ("33", 404), (str(INT64_MAX), 404)])
def test_bad_and_untracked_indexes_are_json(served, raw, status):
    web, _ = served
    response = requests.get(f"{web.url}/api/accounts/{raw}", timeout=5)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["status"] == status and response.json()["message"]


def test_other_errors_are_json(served):
    web, _ = served
    for method, path, status in [("GET", "/api/nope", 404), ("POST", "/api/accounts", 405), ("GET", "/ws", 400)]:
        response = requests.request(method, web.url + path, timeout=5)
        assert response.status_code == status, path
        assert response.json()["status"] == status
    page = requests.get(web.url + "/nope", headers={"Accept": "text/html"}, timeout=5)
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")


def test_worker_down_serves_stale_data_flagged(served):
    web, feeder = served
    feeder.status(heartbeat_age_ms=10_000)
    try:
        status = requests.get(f"{web.url}/api/status", timeout=5).json()
        assert status["worker"]["up"] is False and status["worker"]["heartbeat_age_ms"] >= 10_000
        assert status["mode"] == "ws" and set(status["accounts"]) == {"11", "22"}
        body = served_seq(web.url, 11, feeder.put(11, as_of=1_000))  # data confirmed long ago
        assert body.status_code == 200 and body.json()["stale"] is True
        assert body.headers["ETag"].endswith('-stale"')
    finally:
        feeder.status()


def test_rate_limit_token_and_metrics(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "3/minute", "API_TOKEN": "s3cret-token"}
    feeder = Feeder(env)
    feeder.track([5])
    with run_web(env) as web:
        auth = {"Authorization": "Bearer s3cret-token"}
        denied = requests.get(f"{web.url}/api/accounts/5", timeout=5)
        assert denied.status_code == 401 and denied.json()["status"] == 401
        assert "s3cret" not in denied.text
        assert requests.get(f"{web.url}/api/accounts/5?token=s3cret-token", timeout=5).status_code == 401
        assert requests.get(web.url + "/health", timeout=5).status_code == 200
        assert requests.get(web.url + "/metrics", timeout=5).status_code == 401
        # The two refused requests counted too (guessing tokens costs budget): one good request is left.
        assert requests.get(f"{web.url}/api/accounts/5", headers=auth, timeout=5).status_code == 200
        limited = requests.get(f"{web.url}/api/accounts/5", headers=auth, timeout=5)
        assert limited.status_code == 429
        assert limited.headers["Content-Type"] == "application/json" and limited.json()["status"] == 429
        assert int(limited.headers["Retry-After"]) > 0 and limited.headers["X-RateLimit-Remaining"] == "0"
        assert all(requests.get(web.url + "/health", timeout=5).status_code == 200 for _ in range(5))
        metrics = requests.get(web.url + "/metrics", headers=auth, timeout=5).text
        assert 'lb_http_requests_total{route="/api/accounts/<index>",status="429"}' in metrics
        assert 'lb_account_data_age_seconds{account="5",name="5"}' in metrics


def test_empty_store_is_not_ready_rather_than_untracked(tmp_path):
    """Before the worker's first write (or after Redis comes back empty) no account can be called untracked."""
    env = {"CACHE_DIR": str(tmp_path / "store")}
    with run_web(env) as web:
        response = requests.get(f"{web.url}/api/accounts/11", timeout=5)
        assert response.status_code == 503 and response.json()["status"] == 503
        Feeder(env).track([11])
        assert requests.get(f"{web.url}/api/accounts/12", timeout=5).status_code == 404
