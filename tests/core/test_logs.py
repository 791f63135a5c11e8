"""Log redaction: known secrets and anything shaped like one never reach a log line."""
import io
import json
import logging
import re
from datetime import UTC, datetime

import pytest

from core.logs import JsonFormatter, RedactingFilter, TextFormatter, fields, iso_time, redact

TOKEN = "1795482037:12345:4:" + "ab" * 80
KEY = "0x" + "cd" * 40


def test_redact_shapes_and_known_values():
    text = f"token={TOKEN} key={KEY} proxy=http://user:hunter22@h:1 api=tok-123456"
    out = redact(text, ["tok-123456"])
    assert TOKEN not in out and "cd" * 40 not in out and "hunter22" not in out and "tok-123456" not in out
    assert "http://user:***@h:1" in out


def test_filter_masks_args_and_tracebacks():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(["pw-secret"]))
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("t.redact")
    log.addHandler(handler)
    try:
        raise RuntimeError(f"bad key {KEY} pw-secret")
    except RuntimeError:
        log.exception("failed with %s", TOKEN)
    log.removeHandler(handler)
    out = stream.getvalue()
    assert "failed with ***" in out and "RuntimeError" in out
    assert TOKEN not in out and "cd" * 40 not in out and "pw-secret" not in out


def _formatted(formatter: logging.Formatter, **extra) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter([]))
    handler.setFormatter(formatter)
    log = logging.getLogger("t.format")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("worker heartbeat lost", **extra)
    finally:
        log.removeHandler(handler)
    return stream.getvalue().strip()


ISO_MS_TZ = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def test_timestamps_are_iso_8601_with_milliseconds_and_zone():
    line = json.loads(_formatted(JsonFormatter()))
    assert ISO_MS_TZ.match(line["ts"]), line["ts"]
    stamp = datetime.fromisoformat(line["ts"])
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 5
    text = _formatted(TextFormatter())
    assert ISO_MS_TZ.match(text.split(" ", 1)[0]) and text.endswith("WARNING t.format: worker heartbeat lost")
    assert iso_time(0.5) == "1970-01-01T00:00:00.500+00:00"


def test_json_lines_carry_structured_fields():
    line = json.loads(_formatted(JsonFormatter(), extra=fields(event="worker_down", account=7, egress="proxy-1")))
    assert line["event"] == "worker_down" and line["account"] == 7 and line["egress"] == "proxy-1"
    assert line["msg"] == "worker heartbeat lost"
    # Field values are redacted like messages; None values are left out.
    line = json.loads(_formatted(JsonFormatter(), extra=fields(egress=f"http://u:{KEY}@h:1", account=None)))
    assert "cd" * 40 not in line["egress"] and "account" not in line
    with pytest.raises(ValueError, match="colour"):
        fields(colour="red")


def test_the_worker_logs_json_lines_with_account_and_egress(tmp_path, simulator):
    from tests.fixtures.worker import run_worker, worker_env_for

    env = worker_env_for(simulator, {"CACHE_DIR": str(tmp_path / "store")}, accounts=1, UPSTREAM_TIER="unlimited",
                         LOG_FORMAT="json", WORKER_SUMMARY_EVERY_S="1")
    account = simulator.control.accounts()[0]["account_index"]
    with run_worker(env) as worker:
        def lines() -> list[dict]:
            return [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]

        worker.wait_for(lambda: {"upstream_ws_connected", "account_summary"} <= {x.get("event") for x in lines()},
                        timeout=15, message="the connected and summary lines")
    found = {x["event"]: x for x in lines() if "event" in x}
    assert found["upstream_ws_connected"]["egress"] == "direct"
    assert found["account_summary"]["account"] == account and found["account_summary"]["egress"] == "direct"
    assert all(ISO_MS_TZ.match(x["ts"]) for x in lines())
    assert all(not line or line.startswith("{") for line in worker.log_text().splitlines()), "every line is JSON"
