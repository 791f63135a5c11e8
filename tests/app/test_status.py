"""How the web judges the worker from its status record."""
from app.status import worker_view


def test_worker_up_down_and_stopped():
    assert worker_view(None, 10_000)["up"] is False
    assert worker_view({"heartbeat_at": 9_000, "pid": 1}, 10_000)["up"] is True
    assert worker_view({"heartbeat_at": 6_000, "pid": 1}, 10_000)["up"] is False
    # A clean stop leaves a fresh heartbeat behind; it must not read as alive.
    assert worker_view({"heartbeat_at": 9_900, "stopped_at": 9_900, "pid": 1}, 10_000)["up"] is False
