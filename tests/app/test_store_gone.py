"""What the web answers while the store has lost what the worker wrote (no worker here to heal it): a deleted
CACHE_DIR is `store_reachable: false`; a missing or unreadable tracked list is 503 + Retry-After on every REST
route, never 200 with an empty list, never a 500. Real gunicorn on a real file store."""
from __future__ import annotations

import shutil

import requests

from tests.app.conftest import Feeder
from tests.fixtures.web import run_web
from tests.waiting import wait_for

ROUTES = ("/api/accounts", "/api/accounts/11", "/api/v1/account?by=index&value=11")


def _all_503(url: str) -> bool:
    answers = [requests.get(url + route, timeout=5) for route in ROUTES]
    for response in answers:
        assert response.status_code in (200, 503), (response.status_code, response.text[:200])  # never 500/404
        if response.status_code == 200:
            assert response.json() not in ([], {"accounts": []}), "an empty list while the store lost it"
    return all(r.status_code == 503 and r.headers.get("Retry-After") for r in answers)


def test_deleted_directory_is_unreachable_and_every_route_503(tmp_path) -> None:
    env = {"CACHE_DIR": str(tmp_path / "store")}
    feeder = Feeder(env)
    feeder.track([11, 22])
    feeder.status()
    with run_web(env) as web:
        assert requests.get(web.url + "/api/accounts/11", timeout=5).status_code == 200
        shutil.rmtree(tmp_path / "store")
        health = requests.get(web.url + "/health", timeout=5).json()
        assert health["store_reachable"] is False and health["worker_up"] is False
        assert requests.get(web.url + "/api/status", timeout=5).status_code == 503
        wait_for(lambda: _all_503(web.url), 5, "503 on every route once the mirror re-reads the store")
        Feeder(env).track([11, 22])  # the worker's rewrite (it recreates the directory)
        wait_for(lambda: requests.get(web.url + "/api/accounts/11", timeout=5).status_code == 200, 5, "served again")
        assert requests.get(web.url + "/health", timeout=5).json()["store_reachable"] is True


def test_unreadable_tracked_list_is_503_not_500(tmp_path) -> None:
    env = {"CACHE_DIR": str(tmp_path / "store")}
    feeder = Feeder(env)
    feeder.track([11, 22])
    with run_web(env) as web:
        assert requests.get(web.url + "/api/accounts", timeout=5).status_code == 200
        feeder.store._cache.set("accounts", b"[11, 2")  # truncated
        wait_for(lambda: _all_503(web.url), 5, "503 on every route")
        feeder.store._cache.set("account:11", b"\x80\x04garbage")  # and an unreadable account: read as missing
        feeder.store.set_tracked([11, 22])
        response = requests.get(web.url + "/api/accounts", timeout=5)
        wait_for(lambda: [a["account_index"] for a in requests.get(web.url + "/api/accounts", timeout=5)
                          .json()["accounts"]] == [22], 5, "the unreadable account left out, the other served")
        assert response.status_code == 200
