"""/metrics: Prometheus naming conventions, HTTP and WebSocket figures, the worker's and the accounts' state read
from the store at scrape time, the money gauges' switch, and the separate scrape token."""
from __future__ import annotations

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from app import create_app
from core.settings import from_env
from core.snapshot import now_ms
from tests.app.conftest import Feeder, until
from tests.fixtures.procs import free_port
from tests.fixtures.web import run_web

EGRESS = {"id": "direct", "proxy": None, "accounts": [5],
          "ws": {"state": "connected", "since": 0, "last_frame_at": 0, "reconnects": 0, "mode": "ws"},
          "budget": {"per_minute": 60, "used_last_minute": 15}, "intervals": {"poll": 1.5, "orders": 2.0},
          "requests": 120, "rate_limited": 3, "errors": 0, "backoff_until": None}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a scrape, parsed by prometheus_client's own parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(text: str, metric: str, /, **labels: str) -> float | None:
    return samples(text).get((metric, tuple(sorted(labels.items()))))


def scrape(client, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.data
    return response.get_data(as_text=True)


def put_money(feeder: Feeder, index: int) -> None:
    """An account as the worker writes it from Lighter: decimal strings, margin usage in percent."""
    feeder.seq += 1
    snapshot = feeder.store.account(index)
    at = now_ms()
    snapshot["sections"]["summary"].update(source="ws", as_of=at, data={"total_asset_value": "1234.500000"})
    snapshot["sections"]["positions"].update(source="ws", as_of=at, data=[
        {"market_id": 0, "unrealized_pnl": "10.250000"}, {"market_id": 1, "unrealized_pnl": "-2.000000"}])
    snapshot["sections"]["stats"].update(source="ws", as_of=at, data={"margin_usage": "12.50"})
    snapshot.update(as_of=at, seq=feeder.seq)
    feeder.store.put_account(snapshot, feeder.seq)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    return {"CACHE_DIR": str(tmp_path / "store"), "Lighter_1_main_Account_Index": "5"}


def test_names_follow_prometheus_conventions(env):
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status(egresses=[EGRESS])
    client = create_app(from_env(env)).test_client()
    assert client.get("/api/accounts/5").status_code == 200
    assert client.get("/api/status").status_code == 200
    text = scrape(client)
    families = list(text_string_to_metric_families(text))
    assert len(families) > 15
    for family in families:
        assert family.name.startswith("lb_"), family.name
        for sample in family.samples:
            assert not sample.name.endswith("_created"), f"{sample.name}: _created series are disabled"
            if sample.name.endswith("_total"):
                assert family.type == "counter", f"{sample.name}: _total only on counters"
        if family.type == "counter":
            assert all(s.name == family.name + "_total" for s in family.samples), family.name
        # Base units: durations in seconds, sizes in bytes; no milliseconds or kilobytes anywhere.
        assert not any(unit in family.name for unit in ("_ms", "millis", "_kb", "kilobytes")), family.name


def test_http_requests_and_latency_by_route_and_status(env):
    feeder = Feeder(env)
    feeder.track([5])
    client = create_app(from_env(env)).test_client()
    for _ in range(3):
        assert client.get("/api/accounts/5").status_code == 200  # answered by the shortcut
    assert client.get("/api/accounts/99").status_code == 404    # answered by Flask
    assert client.get("/api/accounts/99").status_code == 404
    text = scrape(client)
    route = "/api/accounts/<index>"
    assert value(text, "lb_http_requests_total", route=route, status="200") == 3
    assert value(text, "lb_http_requests_total", route=route, status="404") == 2
    assert value(text, "lb_http_request_duration_seconds_count", route=route, status="200") == 3
    assert value(text, "lb_http_request_duration_seconds_count", route=route, status="404") == 2
    total = value(text, "lb_http_request_duration_seconds_sum", route=route, status="404")
    assert total is not None and 0 < total < 5
    assert value(text, "lb_http_request_duration_seconds_bucket", route=route, status="200", le="+Inf") == 3


def test_worker_state_is_read_from_its_status_record(env):
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status(egresses=[EGRESS], role="standby", epoch=4, accounts={"5": {"name": "main", "egress": "direct"}})
    client = create_app(from_env(env)).test_client()
    text = scrape(client)
    assert value(text, "lb_worker_up") == 1 and value(text, "lb_store_up") == 1
    assert 0 <= value(text, "lb_worker_heartbeat_age_seconds") < 5
    assert value(text, "lb_worker_role", role="standby") == 1
    assert value(text, "lb_worker_epoch") == 4
    states = {s: value(text, "lb_upstream_ws_state", egress="direct", state=s)
              for s in ("connecting", "connected", "backoff", "readonly", "rest-only")}
    assert states == {"connecting": 0, "connected": 1, "backoff": 0, "readonly": 0, "rest-only": 0}
    assert value(text, "lb_upstream_requests_total", egress="direct") == 120
    assert value(text, "lb_upstream_rate_limited_total", egress="direct") == 3
    assert value(text, "lb_upstream_budget_used_ratio", egress="direct") == 0.25
    assert value(text, "lb_upstream_poll_interval_seconds", egress="direct", kind="poll") == 1.5
    assert value(text, "lb_upstream_poll_interval_seconds", egress="direct", kind="orders") == 2.0
    assert value(text, "lb_account_stale", account="5", name="main") == 0
    assert 0 <= value(text, "lb_account_data_age_seconds", account="5", name="main") < 5

    feeder.status(heartbeat_age_ms=10_000, egresses=[EGRESS])
    text = scrape(client)
    assert value(text, "lb_worker_up") == 0 and value(text, "lb_worker_heartbeat_age_seconds") >= 10


def test_stale_account_and_missing_worker(env):
    feeder = Feeder(env)
    feeder.store.set_tracked([5])
    feeder.put(5, as_of=now_ms() - 60_000)
    client = create_app(from_env(env)).test_client()
    text = scrape(client)
    assert value(text, "lb_worker_up") == 0 and value(text, "lb_worker_heartbeat_age_seconds") is None
    # No status record: the name comes from this web's own settings.
    assert value(text, "lb_account_stale", account="5", name="main") == 1
    assert value(text, "lb_account_data_age_seconds", account="5", name="main") >= 60


def test_money_gauges_are_labelled_by_name_and_can_be_turned_off(env):
    feeder = Feeder(env)
    feeder.track([5])
    put_money(feeder, 5)
    text = scrape(create_app(from_env(env)).test_client())
    assert value(text, "lb_account_equity_usdc", account="5", name="main") == 1234.5
    assert value(text, "lb_account_unrealized_pnl_usdc", account="5", name="main") == 8.25
    assert value(text, "lb_account_margin_usage_ratio", account="5", name="main") == 0.125

    text = scrape(create_app(from_env({**env, "METRICS_ACCOUNT_VALUES": "0"})).test_client())
    assert "lb_account_equity_usdc" not in text and "unrealized_pnl" not in text and "margin_usage" not in text
    assert value(text, "lb_account_stale", account="5", name="main") == 0  # the rest stays


def test_metrics_token_is_separate_from_the_api_token(env):
    feeder = Feeder(env)
    feeder.track([5])
    settings = from_env({**env, "API_TOKEN": "api-secret-1", "METRICS_TOKEN": "scrape-secret-2"})
    client = create_app(settings).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer api-secret-1"}).status_code == 401
    text = scrape(client, "scrape-secret-2")
    assert "api-secret-1" not in text and "scrape-secret-2" not in text
    # The scrape token reads no account data.
    assert client.get("/api/accounts/5", headers={"Authorization": "Bearer scrape-secret-2"}).status_code == 401
    assert client.get("/api/accounts/5", headers={"Authorization": "Bearer api-secret-1"}).status_code == 200
    # Without METRICS_TOKEN, /metrics takes API_TOKEN as before.
    client = create_app(from_env({**env, "API_TOKEN": "api-secret-1"})).test_client()
    scrape(client, "api-secret-1")


def test_a_store_outage_empties_the_store_figures_but_the_scrape_answers(tmp_path):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = create_app(from_env({"CACHE_DIR": str(tmp_path), "REDIS_URL": dead})).test_client()
    text = scrape(client)
    assert value(text, "lb_store_up") == 0 and value(text, "lb_worker_up") == 0
    assert "lb_account_stale{" not in text


def test_websocket_clients_frames_and_bytes_by_route_and_upgrades_not_counted(tmp_path):
    env = {"CACHE_DIR": str(tmp_path / "store")}
    feeder = Feeder(env)
    feeder.track([5])
    feeder.status()
    with run_web(env) as web, connect(web.ws_url, open_timeout=10) as ws:
        until(ws, lambda m: m.get("type") == "snapshot")
        feeder.put(5, collateral="200.000000")
        until(ws, lambda m: m.get("type") == "update")
        text = requests.get(web.url + "/metrics", timeout=5).text
        assert value(text, "lb_ws_clients", route="/ws") == 1
        assert value(text, "lb_ws_clients", route="/stream") == 0
        assert value(text, "lb_ws_frames_sent_total", route="/ws") >= 3  # hello, snapshot, update (and status)
        assert value(text, "lb_ws_sent_bytes_total", route="/ws") > 500
        # The upgrade is not an HTTP answer: no /ws series at all (gevent-websocket would report it as a 204).
        routes = {dict(labels).get("route") for (name, labels) in samples(text) if name == "lb_http_requests_total"}
        assert "/ws" not in routes and "204" not in text


def test_latency_buckets_are_cumulative_and_inclusive():
    from app.metrics import LATENCY_BUCKETS, Latency

    series = Latency()
    for seconds in (0.0005, 0.0006, 0.003, 10.0):
        series.observe(seconds)
    buckets = dict(series.buckets())
    assert buckets["0.0005"] == 1, "le is inclusive: an observation equal to a bound is in that bucket"
    assert buckets["0.001"] == 2 and buckets["0.005"] == 3 and buckets["5.0"] == 3 and buckets["+Inf"] == 4
    assert list(buckets) == [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
    assert series.sum == pytest.approx(10.0041)
