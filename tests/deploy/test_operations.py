"""Operating the web: /health is liveness and /ready readiness (a wrong REDIS_URL fails only the second), one log
line when the web notices the worker or the store go down and come back, CORS for other origins, and the
platform settings (WEB_CONCURRENCY policy, rediss:// verification)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import requests
from redis.exceptions import ConnectionError as RedisConnectionError

from app import create_app
from app.ready import Health, Transitions
from app.services import of
from core.env import SettingsError
from core.settings import from_env
from core.store import Store, make_backend
from tests.app.conftest import Feeder
from tests.fixtures.procs import free_port, stop_process, wait_listening
from tests.fixtures.redis import RedisServer
from tests.fixtures.web import run_web
from tests.paths import ROOT
from tests.waiting import wait_for


def test_a_wrong_redis_url_passes_liveness_and_fails_readiness(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    with run_web(env) as web:
        assert requests.get(web.url + "/health", timeout=5).status_code == 200  # the process serves
        ready = requests.get(web.url + "/ready", timeout=10)
        assert ready.status_code == 503 and ready.headers["Content-Type"] == "application/json"
        assert ready.json() == {"ready": False, "store_reachable": False, "store_populated": False,
                                "worker_up": False, "reason": "store unreachable (check REDIS_URL)"}


def test_ready_once_the_worker_has_populated_the_store(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store")}
    client = create_app(from_env(env)).test_client()
    empty = client.get("/ready")
    assert empty.status_code == 503 and empty.json["reason"] == "the worker has not written the store yet"
    feeder = Feeder(env)
    feeder.track([5])
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json["ready"] is True
    assert ready.json["worker_up"] is False  # a dead worker makes data stale; it does not make the web unready
    feeder.status()
    assert client.get("/ready").json["worker_up"] is True
    wrong = client.post("/ready")
    assert wrong.status_code == 405 and wrong.json["status"] == 405  # JSON errors, like /health


def test_transitions_log_one_line_each_way(caplog):
    caplog.set_level(logging.INFO, logger="app.ready")
    seen = Transitions()
    sequence = [Health(True, True), Health(True, True), Health(True, False), Health(True, False),
                Health(False, None), Health(False, None), Health(True, False), Health(True, True)]
    events = [seen.update(h) for h in sequence]
    assert events == [[], [], ["worker_down"], [], ["store_down"], [], ["store_up"], ["worker_up"]]
    assert [r.lb_fields["event"] for r in caplog.records] == ["worker_down", "store_down", "store_up", "worker_up"]
    # A worker that died during a store outage is reported when the store is readable again.
    seen = Transitions()
    assert [seen.update(h) for h in (Health(True, True), Health(False, None), Health(True, False))] == [
        [], ["store_down"], ["store_up", "worker_down"]]


def test_the_web_logs_worker_and_store_outages_once(tmp_path):
    server = RedisServer()
    server.start()
    heart = ExitStack()
    try:
        env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": server.url, "LOG_FORMAT": "json",
               "WEB_STATUS_EVERY_S": "0.1"}
        feeder = Feeder(env)
        feeder.track([5])
        # The heartbeat stays fresh until the test ages it: on a loaded machine the web may take longer to start
        # than the 3 s after which a heartbeat reads as down, and its monitor would first see the worker down.
        heart.enter_context(feeder.beating())
        with run_web(env) as web:
            requests.get(web.url + "/api/status", timeout=5)  # the first request starts the monitor

            def events() -> list[str]:
                found = []
                for line in web.log().splitlines():
                    if line.startswith("{") and '"event"' in line:
                        found.append(json.loads(line)["event"])
                return [e for e in found if e != "rate_limited"]

            heart.close()
            feeder.status(heartbeat_age_ms=10_000)
            wait_for(lambda: events() == ["worker_down"], 10, "the worker_down line")
            feeder.status()
            wait_for(lambda: events() == ["worker_down", "worker_up"], 10, "the worker_up line")
            server.stop()
            wait_for(lambda: events()[2:] == ["store_down"], 15, "the store_down line")
            server.start()
            feeder.status()
            Feeder(env).track([5])
            wait_for(lambda: events()[3:4] == ["store_up"], 15, "the store_up line")
            assert requests.get(web.url + "/ready", timeout=5).status_code == 200
            # The restarted Redis is empty until the status is written again: the web may see the worker's record
            # missing for a moment (one worker_down, one worker_up), never another store line.
            wait_for(lambda: events()[-1] == "store_up" or events()[4:] == ["worker_down", "worker_up"], 10,
                     "the worker seen up again")
            assert events()[:4] == ["worker_down", "worker_up", "store_down", "store_up"]
            assert events().count("store_down") == events().count("store_up") == 1
            line = next(json.loads(x) for x in web.log().splitlines() if '"store_down"' in x)
            assert line["level"] == "WARNING" and line["ts"].endswith("+00:00") and "." in line["ts"]
    finally:
        heart.close()
        server.stop()


def test_cors_allow_list(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store"), "API_TOKEN": "tok-cors-1"}
    Feeder(env).track([5])
    auth = {"Authorization": "Bearer tok-cors-1"}
    closed = create_app(from_env(env)).test_client()
    response = closed.get("/api/accounts/5", headers={**auth, "Origin": "https://app.example.com"})
    assert response.status_code == 200 and "Access-Control-Allow-Origin" not in response.headers

    client = create_app(from_env({**env, "CORS_ORIGINS": "https://app.example.com"})).test_client()
    allowed = client.get("/api/accounts/5", headers={**auth, "Origin": "https://app.example.com"})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "ETag" in allowed.headers["Access-Control-Expose-Headers"]
    other = client.get("/api/accounts/5", headers={**auth, "Origin": "https://evil.example.net"})
    assert "Access-Control-Allow-Origin" not in other.headers
    # The preflight carries no token and must not be refused for it.
    preflight = client.options("/api/accounts/5", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    # The token is still required for the real request.
    assert client.get("/api/accounts/5", headers={"Origin": "https://app.example.com"}).status_code == 401


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/path", "ftp://x.example"])
def test_bad_cors_origins_name_the_variable(value):
    with pytest.raises(SettingsError, match="^CORS_ORIGINS") as caught:
        from_env({"CORS_ORIGINS": value})
    assert value not in str(caught.value)


def test_web_concurrency_above_one_needs_redis(tmp_path):
    from core.preflight import check_web

    check_web(from_env({}))
    with pytest.raises(SettingsError, match="^WEB_CONCURRENCY above 1 needs REDIS_URL"):
        check_web(from_env({"WEB_CONCURRENCY": "3"}))
    check_web(from_env({"WEB_CONCURRENCY": "3", "REDIS_URL": "redis://h:6379/0"}))
    # The web's entry point refuses to start, in one line naming the variable.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("Lighter_", "REDIS_URL", "API_TOKEN"))}
    env.update(WEB_CONCURRENCY="2", DOTENV_FILE="", CACHE_DIR=str(tmp_path), PORT=str(free_port()))
    result = subprocess.run([sys.executable, "web.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    out = (result.stdout + result.stderr).strip()
    assert "WEB_CONCURRENCY above 1 needs REDIS_URL" in out and "Traceback" not in out and len(out.splitlines()) == 1


def test_rediss_certificate_verification_setting_reaches_both_redis_clients(tmp_path):
    url = "rediss://:pw@127.0.0.1:6380/0"
    verified = from_env({"REDIS_URL": url})
    assert verified.redis_tls_options() == {}
    relaxed = from_env({"REDIS_URL": url, "REDIS_TLS_VERIFY": "0"})
    assert relaxed.redis_tls_options() == {"ssl_cert_reqs": "none"}
    _, client = make_backend(relaxed)
    assert client.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    _, client = make_backend(verified)
    assert client.connection_pool.connection_kwargs.get("ssl_cert_reqs", "required") == "required"
    # Plain redis:// ignores it (there is no certificate).
    assert from_env({"REDIS_URL": "redis://h:1/0", "REDIS_TLS_VERIFY": "0"}).redis_tls_options() == {}
    with pytest.raises(SettingsError, match="^REDIS_TLS_VERIFY"):
        from_env({"REDIS_TLS_VERIFY": "maybe"})
    app = create_app(from_env({"CACHE_DIR": str(tmp_path), "REDIS_URL": url, "REDIS_TLS_VERIFY": "0"}))
    storage = of(app).budget.limiter.storage
    assert storage.get_connection().connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"


@pytest.fixture
def tls_redis(tmp_path) -> Iterator[str]:
    """A redis-server of our own that speaks only TLS, with a self-signed certificate (as Heroku's does)."""
    key, cert = tmp_path / "redis.key", tmp_path / "redis.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", "0", "--tls-port", str(port),
                             "--bind", "127.0.0.1", "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                             "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc, "redis-server (TLS)", 10)
        yield f"rediss://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def test_a_self_signed_rediss_server_needs_redis_tls_verify_0(tmp_path, tls_redis):
    verified = Store.from_settings(from_env({"REDIS_URL": tls_redis}))
    with pytest.raises(RedisConnectionError, match="certificate verify failed"):
        verified.status()
    relaxed_env = {"CACHE_DIR": str(tmp_path / "store"), "REDIS_URL": tls_redis, "REDIS_TLS_VERIFY": "0"}
    Feeder(relaxed_env).track([5])  # the worker's side writes through TLS
    with run_web(relaxed_env) as web:  # gunicorn: the web's store watcher needs gevent's sockets
        assert requests.get(web.url + "/ready", timeout=10).status_code == 200
        first = requests.get(web.url + "/api/accounts/5", timeout=10)
        assert first.status_code == 200 and first.json()["account_index"] == 5
        # The rate limiter's own Redis client goes through TLS too: its count moves.
        assert requests.get(web.url + "/api/accounts/5", timeout=10).headers["X-RateLimit-Remaining"] == "98"
    with run_web({**relaxed_env, "REDIS_TLS_VERIFY": "1"}) as web:
        ready = requests.get(web.url + "/ready", timeout=15)
        assert ready.status_code == 503 and ready.json()["reason"] == "store unreachable (check REDIS_URL)"
