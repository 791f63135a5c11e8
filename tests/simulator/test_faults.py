"""Every fault kind, observed from a real client."""
from __future__ import annotations

import json
import time

import pytest
import requests
from lighter.models import DetailedAccounts
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.simulator.helpers import recv_until

ACCOUNT = "/api/v1/account"


def _account_url(sim) -> str:
    return f"{sim.base_url}{ACCOUNT}?by=index&value={sim.control.accounts()[0]['account_index']}"


def _subscribed(sim, channel: str = "order_book/0"):
    ws = connect(sim.ws_url, ping_interval=None)
    recv_until(ws, lambda f: f["type"] == "connected")
    ws.send(json.dumps({"type": "subscribe", "channel": channel}))
    recv_until(ws, lambda f: f["type"].startswith("subscribed/"))
    return ws


def test_http_5xx_is_scoped(simulator) -> None:
    ctl = simulator.control
    ctl.add_fault("http_5xx", rest=[ACCOUNT], status=502)
    resp = requests.get(_account_url(simulator), timeout=5)
    assert resp.status_code == 502 and resp.json()["code"] == 29500
    assert requests.get(f"{simulator.base_url}/api/v1/orderBooks", timeout=5).status_code == 200
    ctl.clear_faults()
    assert requests.get(_account_url(simulator), timeout=5).status_code == 200


def test_latency_and_hang(simulator) -> None:
    ctl = simulator.control
    url = _account_url(simulator)
    fid = ctl.add_fault("latency", rest="*", ms=400)
    t0 = time.monotonic()
    assert requests.get(url, timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.4
    ctl.remove_fault(fid)
    ctl.add_fault("hang", rest=[ACCOUNT])
    with pytest.raises(requests.ReadTimeout):
        requests.get(url, timeout=0.5)
    ctl.clear_faults()
    assert requests.get(url, timeout=5).status_code == 200
    ctl.add_fault("hang", rest=[ACCOUNT], duration_s=0.4)  # a bounded hang answers when it expires
    t0 = time.monotonic()
    assert requests.get(url, timeout=5).status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_malformed_json_and_schema_drift(simulator) -> None:
    ctl = simulator.control
    url = _account_url(simulator)
    fid = ctl.add_fault("malformed_json", rest=[ACCOUNT])
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        resp.json()
    ctl.remove_fault(fid)
    fid = ctl.add_fault("schema_drift", rest="*")
    body = requests.get(url, timeout=5).json()
    assert body["sim_drift_version"] == 2 and body["accounts"][0]["positions"][0]["sim_drift_version"] == 2
    DetailedAccounts.model_validate(body)  # unknown fields land in additional_properties
    ctl.remove_fault(fid)
    ctl.add_fault("schema_drift", rest="*", lenient=True)
    acct = requests.get(url, timeout=5).json()["accounts"][0]
    assert acct["can_rfq_market_ids"] is None and "pool_info" not in acct


def test_rate_limit_storm(simulator) -> None:
    simulator.control.add_fault("rate_limit_storm", rest="*", duration_s=30, retry_after_s=7)
    resp = requests.get(_account_url(simulator), timeout=5)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"
    assert resp.json() == {"code": 23000, "message": "Too Many Requests!"}
    assert simulator.control.counters()["rate_limited"]["127.0.0.1"] == 1


def test_ws_drop_closes_without_close_frame(simulator) -> None:
    ws = _subscribed(simulator)
    with ws:
        simulator.control.add_fault("ws_drop", ws=["order_book"], duration_s=0.2)
        with pytest.raises(ConnectionClosed) as info:
            recv_until(ws, lambda f: False, timeout=5)
        assert info.value.rcvd is None  # TCP closed, no close frame


def test_ws_silence_then_resume(simulator) -> None:
    ctl = simulator.control
    with _subscribed(simulator) as ws:
        fid = ctl.add_fault("ws_silence", ws="*")
        # Drain anything already in flight, then expect nothing at all, not even a pong.
        _drain(ws, 0.2)
        ws.send(json.dumps({"type": "ping"}))
        with pytest.raises(TimeoutError):
            recv_until(ws, lambda f: True, timeout=0.6)
        ctl.remove_fault(fid)
        recv_until(ws, lambda f: f["type"] == "update/order_book", timeout=2)


def _drain(ws, quiet_s: float) -> None:
    """Read until the socket has been quiet for `quiet_s`."""
    try:
        while True:
            ws.recv(timeout=quiet_s)
    except TimeoutError:
        return


def test_ws_shutdown_frame_then_close(simulator) -> None:
    with _subscribed(simulator) as ws:
        simulator.control.add_fault("ws_shutdown", ws="*", duration_s=0.1, close_in_ms=200)
        frame = recv_until(ws, lambda f: f["type"] == "shutdown")
        assert frame["close_in_ms"] == 200
        with pytest.raises(ConnectionClosed) as info:
            recv_until(ws, lambda f: False, timeout=3)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1001


def test_refuse_upgrade(simulator) -> None:
    ctl = simulator.control
    fid = ctl.add_fault("refuse_upgrade", ws="*")
    with pytest.raises(InvalidStatus) as info:
        connect(simulator.ws_url)
    assert info.value.response.status_code == 400
    assert json.loads(info.value.response.body)["code"] == 20558
    with connect(simulator.ws_url + "?readonly=true") as ws:  # readonly still allowed
        recv_until(ws, lambda f: f["type"] == "connected")
    ctl.remove_fault(fid)
    ctl.add_fault("refuse_upgrade", ws="*", readonly=True)
    with pytest.raises(InvalidStatus):
        connect(simulator.ws_url + "?readonly=true")
    assert ctl.counters()["ws"]["refused_upgrades"] == 2


def test_ws_schema_drift_and_latency(simulator) -> None:
    ctl = simulator.control
    with _subscribed(simulator) as ws:
        ctl.add_fault("schema_drift", ws=["order_book"])
        frame = recv_until(ws, lambda f: f["type"] == "update/order_book" and "sim_drift_version" in f)
        assert frame["order_book"]["sim_drift_version"] == 2
        ctl.clear_faults()
        ctl.add_fault("latency", ws="*", ms=300)
        _drain(ws, 0.15)
        t0 = time.monotonic()
        ws.send(json.dumps({"type": "ping"}))
        recv_until(ws, lambda f: f["type"] == "pong")
        assert time.monotonic() - t0 >= 0.3
