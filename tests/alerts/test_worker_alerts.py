"""Alerts end to end: the real worker against the simulator, a real SQLite outbox, a real local HTTP receiver that
verifies the Standard Webhooks signature, and apprise posting to a local json:// endpoint."""
from __future__ import annotations

from pathlib import Path

from core.alerts.outbox import AlertOutbox
from core.history.db import HistoryDB
from tests.alerts.receiver import SECRET, receiving
from tests.fixtures.simulator import RunningSimulator
from tests.fixtures.worker import run_worker, worker_env_for

MARKET = 0


def rules(webhook: str, apprise: str) -> str:
    return f"""
[destinations.ops]
webhook = "{webhook}"
secret = "{SECRET}"
[destinations.chat]
apprise = "{apprise}"

[[rules]]
name = "fills"
when = "fill"

[[rules]]
name = "flat"
when = "position"
changes = ["closed"]
to = ["ops"]
"""


def test_fills_reach_a_signed_webhook_and_apprise_once(simulator: RunningSimulator, tmp_path: Path) -> None:
    simulator.control.pause()  # only our trades fill
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    with receiving() as hook, receiving() as chat:
        apprise_url = f"json://127.0.0.1:{chat.port}/chat?token=CHATSECRET"
        env = worker_env_for(simulator, {"CACHE_DIR": str(tmp_path / "store")}, accounts=1,
                             UPSTREAM_TIER="unlimited", DATABASE_URL=url, ALERTS_GROUP_S="0.3",
                             ALERTS=rules(hook.url("/hook?token=HOOKSECRET"), apprise_url),
                             PUBLIC_URL="https://dash.example")
        account = int(env["Lighter_1_1_Account_Index"])
        with run_worker(env) as worker:
            worker.wait_for(lambda: "alerts: 2 rule(s), 2 destination(s)" in worker.log_text(), 20,
                            message="alerts attached")
            worker.wait_for(lambda: (worker.store().account(account) or {}).get("sections", {})
                            .get("trades", {}).get("data") is not None, 20, message="trades section known")
            for _ in range(3):
                simulator.control.trade(account, MARKET, "0.01", is_ask=False)
            worker.wait_for(lambda: sum(r.json()["values"]["count"] for r in hook.delivered()) == 3, 20,
                            message="the 3 fills alerted to the webhook")
            worker.wait_for(lambda: chat.delivered(), 20, message="the fills alert through apprise")
            db = HistoryDB(url)
            outbox = AlertOutbox(db)
            worker.wait_for(lambda: outbox.pending_count() == 0, 10, message="outbox drained")
            log = worker.log_text()
        delivered = hook.delivered()
        assert all(r.verified for r in delivered)  # Webhook.verify accepted every signature
        fills = [r.json() for r in delivered]
        assert {f["rule"] for f in fills} == {"fills"}  # three small buys close no position
        total = sum(f["values"]["count"] for f in fills)
        assert total == 3 and len(fills) <= 3  # grouped within ALERTS_GROUP_S when they come together
        body = fills[0]
        assert body["event"] == "fill" and body["account"]["index"] == account
        assert body["link"] == f"https://dash.example/#account-{account}"
        assert {r.headers["webhook-id"] for r in delivered} == {r.json()["id"] for r in delivered}
        assert len({r.headers["webhook-id"] for r in delivered}) == len(delivered)  # each once
        rows = outbox.log(100)
        assert {(r["destination"], r["status"], r["last_code"]) for r in rows if r["destination"] == "ops"} \
            == {("ops", "delivered", 200)}
        assert chat.delivered()[0].path.startswith("/chat")
        for secret in ("HOOKSECRET", "CHATSECRET", SECRET):
            assert secret not in log
        db.close()


def test_a_geo_block_is_an_upstream_blocked_alert(simulator: RunningSimulator, tmp_path: Path) -> None:
    with receiving() as hook:
        rules = (f'[destinations.ops]\nwebhook = "{hook.url()}"\nsecret = "{SECRET}"\n'
                 '[[rules]]\nname = "blocked"\nwhen = "upstream_blocked"\n')
        env = worker_env_for(simulator, {"CACHE_DIR": str(tmp_path / "store")}, accounts=1,
                             DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}", ALERTS=rules,
                             ALERTS_TICK_S="0.2")
        simulator.control.geo_block(True)
        try:
            with run_worker(env) as worker:
                worker.wait_for(hook.delivered, 30, message="upstream_blocked delivered")
        finally:
            simulator.control.geo_block(False)
    [message] = hook.delivered()
    body = message.json()
    assert body["event"] == "upstream_blocked" and body["account"] is None and message.verified
    assert body["values"]["ws_refused_egresses"] == ["direct"]
