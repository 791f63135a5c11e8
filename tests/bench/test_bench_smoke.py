"""The benchmark harness at tiny scale: both fan-out servers, result file fields, zero loss (< 30 s)."""
import json
import shutil

import pytest

from bench.__main__ import main

pytestmark = pytest.mark.slow  # a real fan-out run (~16 s alone)


@pytest.mark.timeout(90)
def test_fanout_quick_writes_results_with_zero_loss(tmp_path):
    results, docs = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    store = "redis" if shutil.which("redis-server") else "file"
    assert main(["fanout", "--quick", "--store", store, "--results", str(results), "--docs", str(docs)]) == 0
    data = json.loads(results.read_text())
    assert {"machine", "fanout", "finished_at"} <= data.keys()
    assert data["machine"]["nproc"] >= 1
    fanout = data["fanout"]
    by_server = {r["server"]: r for r in fanout["results"]}
    assert by_server.keys() == {"reference", "ours"}
    for result in by_server.values():
        assert result["connected"] == result["clients"]
        assert result["lost_keeping_up"] == 0
        assert result["undelivered_after_grace"] == 0
        assert result["clients_keeping_up_min"] == result["clients"]
        for key in ("p50_ms", "p99_ms", "max_ms", "server_cpu_percent", "server_rss_mb"):
            assert result[key]["median"] is not None, key
        assert all(run["delivered"] > 0 for run in result["runs"])
    assert fanout["p99_ratio_ours_over_reference"][str(result["clients"])] > 0
    text = docs.read_text()
    assert "## Fan-out" in text and "## Machine" in text


@pytest.mark.timeout(120)
def test_endtoend_quick_sees_every_trade_at_every_client_of_both_servers(tmp_path):
    """The relay reference and ours, driven by the same simulator trades: each client's receipt of each trade is
    found (by seq for ours, by ordinal for the relay), so the latency and bytes figures cover every client."""
    results, docs = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    store = "redis" if shutil.which("redis-server") else "file"
    assert main(["endtoend", "--quick", "--store", store, "--results", str(results), "--docs", str(docs)]) == 0
    e2e = json.loads(results.read_text())["endtoend"]
    assert {p["target"] for p in e2e["phases"]} == {"relay", "ours"}
    for phase in e2e["phases"]:
        assert phase["connected"] == phase["clients"] and phase["trades"] > 0 and phase["probe_missed"] == 0
        assert phase["samples"] == phase["expected_samples"] == phase["clients"] * phase["trades"]
        assert phase["p99_ms"] > 0 and phase["bytes_per_client_per_trade"] > 0
    for target in ("relay", "ours"):  # the figures the targets use: medians over the runs (one run here)
        summary = e2e["summary"]["20"][target]
        only = next(p["p99_ms"] for p in e2e["phases"] if p["target"] == target)
        assert summary["p99_ms"]["median"] == pytest.approx(only, abs=1e-3)
    ours, relay = (next(p["p99_ms"] for p in e2e["phases"] if p["target"] == t) for t in ("ours", "relay"))
    assert e2e["summary"]["20"]["added"]["p99_ms"]["median"] == pytest.approx(ours - relay, abs=1e-3)
    text = docs.read_text()
    assert "## End to end: ours next to a relay" in text and "**What the store adds**" in text
    assert "| Store hop: p99 added to the relay's (ours − relay, run by run), 20 clients |" in text
