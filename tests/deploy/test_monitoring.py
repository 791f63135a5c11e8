"""The shipped monitoring (monitoring/): the alert rules pass `promtool check rules` and `promtool test rules`, and a
real Prometheus (Debian's package; `make test` installs it) scrapes a running stack (simulator, worker, web) with
METRICS_TOKEN, loads the rules, sees every series the rule tests and the dashboard use, and raises the worker-down
alert when the worker stops."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.fixtures.procs import free_port, stop_process
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.paths import ROOT
from tests.waiting import proc_alive, proc_idle, wait_for

RULES = ROOT / "monitoring" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "monitoring" / "prometheus" / "rules_test.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboard.json"
JOB = "lighter-broadcaster"
TOKEN = "scrape-only-token-7"
# Labelled counters with no child until the first event (a client dropped): absent from a quiet stack's scrape.
ONLY_AFTER_EVENTS = {"lb_ws_clients_dropped_total", "lb_ws_frames_dropped_total"}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make system-deps` installs Debian's prometheus package"
    return path


def test_promtool_checks_and_tests_the_rules():
    checked = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout
    tested = subprocess.run([tool("promtool"), "test", "rules", RULES_TEST.name], cwd=RULES_TEST.parent,
                            capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    assert alerts == {"LighterWorkerDown", "LighterStoreUnreachable", "LighterAccountDataStale",
                      "LighterUpstreamRateLimited", "LighterStandbyTookOver"}
    tested_alerts = {case["alertname"] for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
                     for case in test["alert_rule_test"]}
    assert tested_alerts == alerts, "every alert has a promtool test"


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 16
    return exprs


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str, **params: Any) -> Any:
        response = requests.get(self.url + path, params=params, timeout=5)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]


@contextmanager
def run_prometheus(tmp: Path, web_port: int) -> Iterator[Prometheus]:
    port = free_port()
    (tmp / "token").write_text(TOKEN)
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{web_port}"]}],
                                  "authorization": {"credentials_file": str(tmp / "token")}}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([tool("prometheus"), f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--log.level=warn"], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: requests.get(url + "/-/ready", timeout=1).status_code == 200, 30, "prometheus ready",
                 ignore=(requests.RequestException,), alive=proc_alive(proc, "prometheus", log.read_text),
                 idle=proc_idle(proc))
        yield Prometheus(url)
    finally:
        stop_process(proc, 10)


def series_shape(selector: str) -> tuple[str, frozenset[str]]:
    """(metric name, label names) of a promtool input series like `name{a="1",b="2"}`."""
    name, _, labels = selector.partition("{")
    return name, frozenset(re.findall(r'(\w+)="', labels))


@pytest.mark.slow  # a whole stack plus Prometheus (~15 s)
def test_prometheus_scrapes_a_running_stack_and_the_rules_see_real_series(tmp_path, simulator):
    store_env = {"CACHE_DIR": str(tmp_path / "store")}
    env = worker_env_for(simulator, store_env, accounts=2)  # standard tier: a REST budget to report
    with run_worker(env) as worker, run_web({**store_env, "METRICS_TOKEN": TOKEN}) as web, \
            run_prometheus(tmp_path, web.port) as prom:
        assert requests.get(web.url + "/metrics", timeout=5).status_code == 401, "the scrape needs the token"
        wait_for(lambda: prom.query(f'lb_worker_up{{job="{JOB}"}} == 1'), 30, "Prometheus to see the worker up",
                 ignore=(requests.RequestException,))
        wait_for(lambda: len(prom.query('lb_upstream_ws_state{state="connected"} == 1')) == 1, 30,
                 "the upstream WebSocket connected")
        equity = wait_for(lambda: prom.query("lb_account_equity_usdc"), 30, "the equity gauges")
        accounts = {int(a["account_index"]) for a in simulator.control.accounts()[:2]}
        assert {int(s["metric"]["account"]) for s in equity} == accounts
        assert {s["metric"]["name"] for s in equity} == {"1", "2"}  # Lighter_1_{NAME}_*: worker_env_for's names
        wait_for(lambda: prom.query("lb_http_request_duration_seconds_count"), 30, "the latency histogram")

        # The rules are loaded and evaluate without error.
        groups = prom.get("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert len(rules) == 5 and all(r["health"] == "ok" for r in rules), rules

        # Every input series of the promtool tests has the shape of a live series (name and label names).
        live: dict[str, set[frozenset[str]]] = {}
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]:
            for series in test["input_series"]:
                name, labels = series_shape(series["series"])
                if name not in live:
                    found = prom.get("/api/v1/series", **{"match[]": name})
                    live[name] = {frozenset(k for k in s if k != "__name__") for s in found}
                assert labels in live[name], f"{series['series']}: no live series has labels {sorted(labels)}"

        # Every dashboard query is valid PromQL over metrics the stack exports.
        names = set(prom.get("/api/v1/label/__name__/values"))
        for expr in dashboard_exprs():
            prom.query(expr.replace("$__rate_interval", "1m"))  # asserts status == success
            used = set(re.findall(r"\blb_[a-z_]+", expr)) - ONLY_AFTER_EVENTS
            assert used <= names, f"{expr}: {used - names} not exported"

        worker.stop()
        firing = wait_for(lambda: [a for a in prom.get("/api/v1/alerts")["alerts"]
                                   if a["labels"]["alertname"] == "LighterWorkerDown"], 30,
                          "the worker-down alert (pending for its 1 minute)")
        assert firing[0]["state"] in ("pending", "firing") and firing[0]["labels"]["job"] == JOB


def test_the_dashboard_is_importable_json():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "lighter-broadcaster" and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_the_scrape_config_in_the_docs_is_valid(tmp_path):
    block = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "operations.md").read_text(), re.S)
    assert block, "docs/operations.md lost its scrape config example"
    documented = yaml.safe_load(block.group(1))
    job = documented["scrape_configs"][0]
    assert job["job_name"] == JOB and "credentials_file" in job["authorization"]
    token = tmp_path / "token"
    token.write_text(TOKEN)
    job["authorization"]["credentials_file"] = str(token)  # the documented path does not exist here
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({**documented, "rule_files": [str(RULES)]}))
    checked = subprocess.run([tool("promtool"), "check", "config", str(config)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr
