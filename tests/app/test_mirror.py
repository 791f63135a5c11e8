"""The mirror (REST served from memory while the store watcher is in sync, from the store otherwise) and the REST
short-circuit.

In-process (Flask test client, no monkey-patching): the watcher greenlet runs only when this test yields,
so "the store changed but the watcher has not seen it yet" is deterministic here.
"""
from __future__ import annotations

from typing import Any

import gevent
import pytest

from app import create_app
from app.rest.shortcut import Shortcut
from app.services import of
from core.settings import from_env
from core.store import StoreError
from tests import waiting
from tests.app.conftest import Feeder

TOKEN = {"Authorization": "Bearer s3cret-token"}


def wait_for(predicate: Any, deadline_s: float = 5.0, what: str = "condition") -> None:
    """tests.waiting.wait_for, pausing in gevent.sleep so the watcher greenlet runs between checks."""
    waiting.wait_for(predicate, deadline_s, what, interval=0.005, idle=gevent.sleep)


@pytest.fixture
def served(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "RATE_LIMIT": "6/minute", "API_TOKEN": "s3cret-token"}
    feeder = Feeder(env)
    feeder.track([11, 22])
    feeder.status()
    app = create_app(from_env(env))
    watcher = of(app).watcher
    client = app.test_client()
    assert client.get("/api/accounts/11", headers=TOKEN).status_code == 200  # REST alone starts the watcher
    wait_for(lambda: watcher.in_sync() and watcher.mirror.loaded, what="the watcher in sync")
    watcher.mirror.max_age_s = 3600  # no periodic re-read mid-test: only the feed moves the mirror here
    try:
        yield app, client, feeder
    finally:
        watcher.stop()


def test_in_sync_rest_serves_the_mirror_and_follows_the_feed(served):
    app, client, feeder = served
    watcher = of(app).watcher
    seq = feeder.put(11, collateral="7.000000")
    # The watcher has not run since the write: the mirror (hence REST) still has the previous version.
    assert client.get("/api/accounts/11", headers=TOKEN).json["seq"] < seq
    wait_for(lambda: watcher.mirror.account(11)["seq"] == seq, what="the watcher applying the change")
    body = client.get("/api/accounts/11", headers=TOKEN).json
    assert body["seq"] == seq and body["sections"]["summary"]["data"]["collateral"] == "7.000000"
    assert [a["seq"] for a in client.get("/api/accounts", headers=TOKEN).json["accounts"]][0] == seq
    assert client.get("/api/accounts/33", headers=TOKEN).status_code == 404  # misses still answered by the store


def test_out_of_sync_rest_reads_the_store(served):
    app, client, feeder = served
    watcher = of(app).watcher
    watcher._needs_resync = True  # what a store error leaves behind until the watcher has resynced
    seq = feeder.put(22)
    assert client.get("/api/accounts/22", headers=TOKEN).json["seq"] == seq  # the store, not the mirror
    store = of(app).store

    def down(*_args: Any) -> Any:
        raise StoreError("store down")

    store.account = store.accounts = store.populated = store.tracked = down
    assert client.get("/api/accounts/22", headers=TOKEN).status_code == 503


def test_in_sync_but_tracked_list_unreadable_falls_back(served):
    app, client, _ = served
    mirror = of(app).watcher.mirror
    store = of(app).store

    def down(*_args: Any) -> Any:
        raise StoreError("store down")

    store.account = store.accounts = store.populated = store.tracked = down
    mirror._tracked_at = float("-inf")  # due for its periodic re-read, which fails
    assert client.get("/api/accounts/11", headers=TOKEN).status_code == 503


def _inner_calls(app: Any) -> list[str]:
    """Record each request that gets past the short-circuit into Flask."""
    calls: list[str] = []
    shortcut = app.wsgi_app
    while not isinstance(shortcut, Shortcut):  # under the WSGI layers outside it (app/guard.py's)
        shortcut = shortcut.app
    inner = shortcut.app

    def spy(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    shortcut.app = spy
    return calls


@pytest.mark.parametrize("path", ["/api/accounts/11", "/api/accounts"])
def test_304_short_circuit_matches_flask_and_is_free(served, path):
    app, client, _ = served
    watcher = of(app).watcher
    metrics = of(app).metrics
    first = client.get(path, headers=TOKEN)  # counted, as every 200 (the fixture used one)
    tag = first.headers["ETag"]
    watcher._needs_resync = True
    flask_304 = client.get(path, headers={**TOKEN, "If-None-Match": tag})  # Flask's own 304 (mirror untrusted)
    watcher._needs_resync = False
    calls = _inner_calls(app)
    route = "/api/accounts/<index>" if path != "/api/accounts" else "/api/accounts"
    before = metrics.requests.labels(route=route, status="304")._value.get()
    for _ in range(10):
        ours = client.get(path, headers={**TOKEN, "If-None-Match": tag})
        assert ours.status == flask_304.status == "304 NOT MODIFIED" and ours.data == b""
        # The same headers, in the same order; the data's age is taken when each answer is built.
        assert [k for k, _ in ours.headers] == [k for k, _ in flask_304.headers]
        assert [h for h in ours.headers if h[0] != "X-Data-Age-Ms"] == \
            [h for h in flask_304.headers if h[0] != "X-Data-Age-Ms"]
    assert calls == []  # never reached Flask
    assert metrics.requests.labels(route=route, status="304")._value.get() == before + 10
    # A wrong or missing token goes to Flask: 401, even with a matching ETag.
    assert client.get(path, headers={"If-None-Match": tag}).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer nope", "If-None-Match": tag}).status_code == 401
    assert calls == [path, path]
    # The limiter never saw the 304s: since `first`, only the two 401s and this request were counted.
    after = client.get(path, headers=TOKEN)
    assert int(after.headers["X-RateLimit-Remaining"]) == int(first.headers["X-RateLimit-Remaining"]) - 3


def test_short_circuit_passes_through_stale_tags_and_odd_paths(served):
    app, client, feeder = served
    watcher = of(app).watcher
    old = client.get("/api/accounts/11", headers=TOKEN).headers["ETag"]
    seq = feeder.put(11, as_of=1_000)  # confirmed long ago: the ETag turns "-stale"
    wait_for(lambda: watcher.mirror.account(11)["seq"] == seq, what="the watcher applying the change")
    calls = _inner_calls(app)
    stale = client.get("/api/accounts/11", headers={**TOKEN, "If-None-Match": old})  # the shortcut's 200
    assert stale.status_code == 200 and stale.headers["ETag"] == f'W/"{seq}-stale"'
    assert client.get("/api/accounts/11", headers={**TOKEN, "If-None-Match": stale.headers["ETag"]}).status_code == 304
    assert client.get("/api/accounts/x1", headers={**TOKEN, "If-None-Match": "*"}).status_code == 400
    assert client.get("/api/accounts/33", headers=TOKEN).status_code == 404
    assert calls == ["/api/accounts/x1", "/api/accounts/33"]


def _without_ages(value: Any) -> Any:
    """A body minus `age_ms`, which moves with the clock between two reads of one version."""
    if isinstance(value, dict):
        return {k: _without_ages(v) for k, v in value.items() if k != "age_ms"}
    return value


def _same_answer(fast: Any, flask: Any, spent_between: int) -> None:
    """Same status, header names in the same order, same values; the budget moved by `spent_between`."""
    assert fast.status == flask.status and list(fast.headers.keys()) == list(flask.headers.keys())
    for name, value in flask.headers.items():
        if name == "X-RateLimit-Remaining":
            assert int(fast.headers[name]) == max(0, int(value) - spent_between)
        elif name == "Retry-After":  # whole seconds until the same reset, read a moment apart
            assert abs(int(fast.headers[name]) - int(value)) <= 1
        elif name == "X-Data-Age-Ms":  # the same as_of, aged by the clock between the two reads
            assert 0 <= abs(int(fast.headers[name]) - int(value)) <= 1000, name
        elif name != "Content-Length" or fast.status_code != 200:  # a 200's body carries age_ms
            assert fast.headers[name] == value, name


def test_200_and_429_short_circuit_match_flask_and_share_one_budget(served):
    app, client, _ = served  # RATE_LIMIT 6/minute; the fixture's request spent one
    watcher = of(app).watcher
    requests_total = of(app).metrics.requests
    path = "/api/accounts/11"
    watcher._needs_resync = True
    flask_200 = client.get(path, headers=TOKEN)  # Flask's own 200 (mirror untrusted): the 2nd request counted
    watcher._needs_resync = False
    calls = _inner_calls(app)
    before = {s: requests_total.labels(route="/api/accounts/<index>", status=s)._value.get() for s in ("200", "429")}
    fast = [client.get(path, headers=TOKEN) for _ in range(6)]  # the 3rd to 8th: four 200s, then two 429s
    assert calls == []  # none reached Flask
    assert [r.status_code for r in fast] == [200, 200, 200, 200, 429, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in fast] == ["3", "2", "1", "0", "0", "0"]
    _same_answer(fast[0], flask_200, spent_between=1)
    assert _without_ages(fast[0].json) == _without_ages(flask_200.json)
    assert {s: requests_total.labels(route="/api/accounts/<index>", status=s)._value.get() - before[s]
            for s in before} == {"200": 4, "429": 2}
    watcher._needs_resync = True
    flask_429 = client.get(path, headers=TOKEN)
    assert calls == [path]
    _same_answer(fast[-1], flask_429, spent_between=0)
    assert fast[-1].data == flask_429.data and fast[-1].json["status"] == 429
    assert int(fast[-1].headers["Retry-After"]) > 0
