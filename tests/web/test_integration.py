"""The web against a store fed by the real worker following the real simulator: REST bodies and schemathesis."""
from __future__ import annotations

import contextlib

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for

FRESHNESS = ("age_ms", "stale")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    store_env = {"CACHE_DIR": str(tmp_path_factory.mktemp("integration") / "store")}
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(run_simulator(tick_ms=100))
        env = worker_env_for(sim, store_env, accounts=2, public_only=(1,), UPSTREAM_TIER="unlimited",
                             POLL_INTERVAL="0.3")
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        worker.wait_for(lambda: len(store.accounts()) == 2 and all(
            a["sections"]["summary"]["data"] for a in store.accounts()), timeout=20, message="both accounts")
        web = stack.enter_context(run_web({**store_env, "RATE_LIMIT": "100000/minute"}))
        yield sim, worker, store, web


def _strip(body: dict) -> dict:
    out = {k: v for k, v in body.items() if k not in FRESHNESS}
    out["sections"] = {n: {k: v for k, v in s.items() if k not in FRESHNESS} for n, s in body["sections"].items()}
    return out


def test_rest_bodies_match_the_store(stack):
    sim, worker, store, web = stack
    for index in store.tracked():
        def matching() -> dict | None:
            body = requests.get(f"{web.url}/api/accounts/{index}", timeout=5).json()
            stored = store.account(index)
            return body if stored["seq"] == body["seq"] and _strip(body) == stored else None
        body = worker.wait_for(matching, timeout=10, message=f"a REST body equal to the stored account {index}")
        assert body["stale"] is False and body["age_ms"] is not None
    listing = requests.get(f"{web.url}/api/accounts", timeout=5)
    assert [a["account_index"] for a in listing.json()["accounts"]] == store.tracked()
    again = requests.get(f"{web.url}/api/accounts/{index}", timeout=5)
    assert requests.get(f"{web.url}/api/accounts/{index}", headers={"If-None-Match": again.headers["ETag"]},
                        timeout=5).status_code in (200, 304)  # 200 only if the worker wrote in between
    status = requests.get(f"{web.url}/api/status", timeout=5).json()
    assert status["worker"]["up"] is True and status["mode"] in ("ws", "ws-readonly", "rest-only")
    assert status["egresses"][0]["id"] == "direct" and set(status["accounts"]) == {str(i) for i in store.tracked()}
    assert status["intervals"]["poll"]["configured"] == 0.3


@pytest.fixture(scope="module")
def api_schema(stack):
    web = stack[3]
    return schemathesis.openapi.from_url(f"{web.url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_openapi(case):
    """No 5xx, status codes and bodies as documented, for generated valid and invalid requests.

    The Lighter-compatible routes answer a well-formed query for an untracked account with 400 21100, exactly as
    Lighter does (the SDK depends on it), so "schema-valid data must be accepted" does not apply to them.
    """
    lighter_route = case.operation.path.startswith("/api/v1/")
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if lighter_route else None)
