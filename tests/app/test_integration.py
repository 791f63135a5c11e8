"""The web against a store fed by the real worker following the real simulator: REST bodies and schemathesis."""
from __future__ import annotations

import contextlib

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from tests.app.helpers import apply_confirm, without_freshness
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    directory = tmp_path_factory.mktemp("integration")
    # One store and one history database for worker and web, as deployed (never the repository's .cache).
    store_env = {"CACHE_DIR": str(directory / "store"), "DATABASE_URL": f"sqlite:///{directory / 'history.sqlite3'}"}
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


def test_rest_bodies_match_the_store(stack):
    sim, worker, store, web = stack
    for index in store.tracked():
        def matching() -> dict | None:
            body = requests.get(f"{web.url}/api/accounts/{index}", timeout=5).json()
            stored = store.account(index)
            return body if stored["seq"] == body["seq"] and without_freshness(body) == stored else None
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


def test_patch_updates_rebuild_exactly_what_full_updates_carry(stack):
    """Two /ws clients of the same feed: one asks for patch updates. Applying each patch (with a standard RFC 6902
    library) to the account as held
    gives, at every seq, the account the full-update client was sent; and patches are smaller."""
    import jsonpatch
    import orjson
    from websockets.sync.client import connect

    sim, worker, store, web = stack
    ws_url = web.url.replace("http", "ws", 1) + "/ws"
    held: dict[int, dict] = {}
    rebuilt: dict[int, dict] = {}   # seq -> the account the patch client holds after it
    full: dict[int, dict] = {}      # seq -> the account the full client was sent
    sizes = {"patch": 0, "full": 0}
    with connect(ws_url + "?updates=full&v=1", max_size=2**24) as plain, \
            connect(ws_url + "?updates=patch", max_size=2**24) as compact:
        assert orjson.loads(compact.recv(timeout=5))["updates"] == "patch"
        assert orjson.loads(plain.recv(timeout=5))["updates"] == "full"
        patched_updates = 0
        while patched_updates < 30:
            msg = orjson.loads(raw := compact.recv(timeout=10))
            if msg["type"] == "snapshot":
                held[msg["account_index"]] = msg["account"]
            elif msg["type"] == "update":
                if "patch" in msg:
                    assert held[msg["account_index"]]["seq"] == msg["prev_seq"]
                    held[msg["account_index"]] = jsonpatch.apply_patch(held[msg["account_index"]], msg["patch"])
                    patched_updates += 1
                    sizes["patch"] += len(raw)
                else:
                    held[msg["account_index"]] = msg["account"]
                rebuilt[msg["seq"]] = held[msg["account_index"]]
            elif msg["type"] == "confirm":  # protocol 2: only freshness moved
                assert held[msg["account_index"]]["seq"] == msg["prev_seq"]
                held[msg["account_index"]] = apply_confirm(held[msg["account_index"]], msg)
                rebuilt[msg["seq"]] = held[msg["account_index"]]
        last = max(rebuilt)
        while not full or max(full) < last:
            msg = orjson.loads(raw := plain.recv(timeout=10))
            if msg["type"] == "update":
                full[msg["seq"]] = msg["account"]
                sizes["full"] += len(raw)
    common = sorted(set(rebuilt) & set(full))
    assert len(common) >= 20
    for seq in common:
        assert without_freshness(rebuilt[seq]) == without_freshness(full[seq]), f"seq {seq}"
        assert rebuilt[seq]["stale"] == full[seq]["stale"]
    assert sizes["patch"] / patched_updates < sizes["full"] / len(full) / 2
