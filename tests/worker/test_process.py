"""The worker as a process: JSON logs, per-account summaries, a rejected key, prompt stop mid-request."""
from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.simulator import RunningSimulator
from tests.fixtures.worker import run_worker, worker_env_for
from tests.worker.helpers import has_data


def test_json_logs_summaries_and_stop_with_requests_hanging(simulator: RunningSimulator, tmp_path: Path) -> None:
    accounts = [a["account_index"] for a in simulator.control.accounts()]
    # Account 2 is configured with an API key index Lighter doesn't know: its orders must be refused and
    # flagged while everything else keeps working.
    env = worker_env_for(simulator, {"CACHE_DIR": str(tmp_path / "store")}, UPSTREAM_TIER="unlimited",
                         LOG_FORMAT="json", WORKER_SUMMARY_EVERY_S="1", WORKER_HTTP_TIMEOUT_S="30",
                         Lighter_1_2_API_KEY_Index="200")
    with run_worker(env, log_dir=tmp_path) as worker:
        store = worker.store()
        worker.wait_for(lambda: all(has_data(store, i, ("summary", "positions")) for i in accounts), 15,
                        message="first data")
        worker.wait_for(lambda: "HTTP 401" in (store.account(accounts[1])["sections"]["orders"]["error"] or ""),
                        5, message="orders of the misconfigured account flagged")
        assert has_data(store, accounts[0], ("orders",)) and has_data(store, accounts[2], ("orders",))
        simulator.control.add_fault("hang", rest="*")  # requests now sit in flight until we stop
        worker.wait_for(lambda: worker.log_text().count("via direct: last 1s") >= 2 * len(accounts), 5,
                        message="two rounds of summary lines")
        took = worker.stop()
        assert took < 5 and worker.exit_code == 0
        final = store.status()
    assert final["stopped_at"] >= final["started_at"]
    lines = [json.loads(line) for line in worker.log_text().splitlines()]
    assert {"ts", "level", "logger", "msg"} <= set(lines[0])
    summaries = [line["msg"] for line in lines if "via direct: last 1s" in line["msg"]]
    assert all(any(str(i) in msg for msg in summaries) for i in accounts)


def test_bad_configuration_exits_2_naming_the_variable(tmp_path: Path) -> None:
    secret = "0x" + "ab" * 39  # two characters short of a key: rejected, and never echoed
    env = {"Lighter_1_1_Account_Index": "5", "Lighter_1_1_API_KEY_Index": "4", "Lighter_1_1_PRIVATE": secret,
           "CACHE_DIR": str(tmp_path / "store"), "DOTENV_FILE": ""}
    with run_worker(env, log_dir=tmp_path) as worker:
        worker.proc.wait(timeout=30)
    assert worker.exit_code == 2
    log = worker.log_text()
    assert "Lighter_1_1_PRIVATE" in log and secret[2:] not in log
