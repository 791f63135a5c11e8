"""The dashboard's alerts panel in headless Chromium against the whole live stack, with rules configured."""
from __future__ import annotations

import contextlib

import pytest
import requests

from tests.app.browser import DESKTOP
from tests.fixtures.simulator import run_simulator
from tests.fixtures.web import run_web
from tests.fixtures.worker import run_worker, worker_env_for
from tests.waiting import wait_for

pytestmark = pytest.mark.browser


def alerts_panel(page) -> dict:
    """What the alerts panel shows: each rule's row and each delivery row (the times as exact ms and as text)."""
    return page.evaluate("""() => ({
        rules: [...document.querySelectorAll('#alert-rules tbody tr')].map((tr) => ({
            name: tr.dataset.rule, when: tr.children[1].textContent, state: tr.children[2].textContent,
            fired: tr.querySelector('.fired').dataset.value, fired_text: tr.querySelector('.fired').textContent,
            to: tr.children[4].textContent})),
        deliveries: [...document.querySelectorAll('#alerts tbody tr')].map((tr) => ({
            id: Number(tr.dataset.delivery), event_id: tr.dataset.event, fired: tr.children[0].dataset.value,
            rule: tr.children[1].textContent, account: tr.children[2].textContent,
            destination: tr.children[3].textContent, status: tr.children[4].textContent,
            attempts: tr.children[5].textContent, code: tr.children[6].textContent})),
    })""")


def test_alerts_panel(browser, tmp_path):
    """After a fill with rules configured: the panel shows each rule, its state and last fired, and the delivery
    log, exactly as /api/alerts says; no destination URL, token or signing secret anywhere in the page."""
    from tests.alerts.receiver import SECRET, receiving

    store_env = {"CACHE_DIR": str(tmp_path / "store"), "DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}"}
    with contextlib.ExitStack() as stack:
        receiver = stack.enter_context(receiving())
        rules = f"""
[destinations.ops]
webhook = "{receiver.url('/hook?token=HOOKSECRET')}"
secret = "{SECRET}"
[destinations.chat]
apprise = "json://127.0.0.1:{receiver.port}/chat?token=CHATSECRET"

[[rules]]
name = "fills"
when = "fill"
to = ["ops"]

[[rules]]
name = "margin"
when = "margin_usage_above"
percent = 99
"""
        sim = stack.enter_context(run_simulator(tick_ms=1000))
        sim.control.pause()  # no living market: the fills are this test's own
        env = worker_env_for(sim, store_env, accounts=1, UPSTREAM_TIER="unlimited", ALERTS=rules,
                             ALERTS_GROUP_S="0")
        worker = stack.enter_context(run_worker(env))
        store = worker.store()
        [account] = [int(v) for k, v in env.items() if k.endswith("_Account_Index")]
        worker.wait_for(lambda: (store.account(account) or {}).get("sections", {}).get("trades", {})
                        .get("data") is not None, timeout=20, message="the trades section known")
        web = stack.enter_context(run_web({**store_env, "Lighter_1_1_Account_Index": str(account),
                                           "ALERTS": rules, "RATE_LIMIT": "10000/minute"}))

        def api() -> dict:
            return requests.get(f"{web.url}/api/alerts", timeout=5).json()

        assert sim.control.trade(account, 0, "0.01", is_ask=False)
        wait_for(lambda: [d["status"] for d in api()["deliveries"]] == ["delivered"], timeout=30,
                 message="the fill alert delivered", ignore=(requests.RequestException,))
        page = browser.new_page(viewport=DESKTOP)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(web.url + "/")
        page.locator("#alerts tbody tr").first.wait_for(timeout=15_000)
        expected = api()
        page.evaluate("refreshAlerts()")  # the same state as `expected` (nothing fires meanwhile: no market)
        shown_panel = alerts_panel(page)

        fills, margin = expected["rules"]
        assert (fills["state"], margin["state"], margin["last_fired"]) == ("delivered", "quiet", None)
        assert shown_panel["rules"] == [
            {"name": "fills", "when": "fill", "state": "delivered", "fired": str(fills["last_fired"]),
             "fired_text": page.evaluate("(ms) => new Date(ms).toLocaleTimeString()", fills["last_fired"]),
             "to": "ops"},
            {"name": "margin", "when": "margin_usage_above", "state": "quiet", "fired": "", "fired_text": "—",
             "to": "ops, chat"}]
        [row] = expected["deliveries"]
        assert shown_panel["deliveries"] == [
            {"id": row["id"], "event_id": row["event_id"], "fired": str(row["created_ms"]), "rule": "fills",
             "account": f"#{account}", "destination": "ops", "status": "delivered", "attempts": str(row["attempts"]),
             "code": "200"}]
        assert [r.headers["webhook-id"] for r in receiver.delivered()] == [row["event_id"]]
        html = page.content()
        for secret in ("HOOKSECRET", "CHATSECRET", SECRET, f"127.0.0.1:{receiver.port}", "json://", "/hook"):
            assert secret not in html
        assert page.locator("#alerts-section").is_visible() and errors == []
