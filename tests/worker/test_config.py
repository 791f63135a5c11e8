"""Worker tuning from env and the egress assignment (groups, proxies, round-robin)."""
from __future__ import annotations

import pytest

from core.settings import SettingsError, from_env
from core.tuning import WorkerTuning, worker_from_env
from worker.upstream.egress import assign, build_egresses

KEY = "ab" * 40


def test_tuning_defaults_and_overrides() -> None:
    assert worker_from_env({}) == WorkerTuning()
    tuning = worker_from_env({"WORKER_WS": "0", "WORKER_WS_SILENCE_S": "2.5", "WORKER_REST_CONCURRENCY": "2"})
    assert (tuning.ws, tuning.ws_silence_s, tuning.rest_concurrency) == (False, 2.5, 2)
    assert WorkerTuning().ping_interval(6.0) == 2.0 and WorkerTuning(ws_ping_s=7).ping_interval(5.0) == 7
    with pytest.raises(SettingsError, match="WORKER_HTTP_TIMEOUT_S"):
        worker_from_env({"WORKER_HTTP_TIMEOUT_S": "soon"})
    with pytest.raises(SettingsError, match="WORKER_WS"):
        worker_from_env({"WORKER_WS": "maybe"})


def test_groups_round_robin_over_their_proxies() -> None:
    env = {f"Lighter_1_{n}_Account_Index": str(100 + n) for n in range(1, 4)}
    env.update({f"Lighter_2_{n}_Account_Index": str(200 + n) for n in range(1, 3)})
    env.update({"Lighter_1_PROXY_1_URL": "http://u:secret@10.0.0.1:3128", "Lighter_1_PROXY_2_URL": "10.0.0.2:3128:u:p",
                "Lighter_2_1_PRIVATE": KEY, "Lighter_2_1_API_KEY_Index": "4"})
    routes = {key: (proxy, [a.account_index for a in accounts]) for key, proxy, accounts in assign(from_env(env))}
    assert routes["group1-proxy1"][1] == [101, 103] and routes["group1-proxy2"][1] == [102]
    assert routes["direct"] == (None, [201, 202])
    assert routes["group1-proxy1"][0].redacted == "http://u:***@10.0.0.1:3128"


def test_egress_budget_and_plan_follow_tier() -> None:
    env = {"Lighter_1_1_Account_Index": "1", "Lighter_1_1_PRIVATE": KEY, "Lighter_1_1_API_KEY_Index": "4"}
    (egress,) = build_egresses(from_env(env), WorkerTuning(), clock=lambda: 0.0)
    assert egress.budget.per_window == 60 and egress.budget.window_s == 60
    assert egress.plan.stretched and egress.ws.state == "connecting"
    (short,) = build_egresses(from_env(env), WorkerTuning(budget_window_s=5.0), clock=lambda: 0.0)
    assert short.budget.per_window == 60 and short.budget.window_s == 5.0 and not short.plan.stretched
    (unlimited,) = build_egresses(from_env({**env, "UPSTREAM_TIER": "unlimited"}), WorkerTuning(ws=False), lambda: 0.0)
    assert not unlimited.plan.stretched and unlimited.ws.mode == "rest-only"
    assert unlimited.session.trust_env is False
