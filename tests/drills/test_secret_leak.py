"""Drill 6: a secret-leak scan of a whole run.

Simulator accounts with real-looking keys; groups 1 (direct), 2 (through tinyproxy with a BasicAuth password) and
3 (through the same proxy with a wrong password, so proxy errors get logged); the web with API_TOKEN; DEBUG logs
everywhere; upstream faults on the way so error paths run too. Everything the web serves on every route
(enumerated from the app's URL map, with and without the token), every /ws and /stream message, the worker's and
the web's whole output and the store's raw bytes are scanned for private keys, auth tokens, proxy passwords and
the API token.
"""
from __future__ import annotations

import json
import re
import secrets
import threading
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.drills.clients import WsWatcher, now_ms
from tests.drills.helpers import live_stack
from tests.fixtures.tinyproxy import PROXY_PASSWORD, PROXY_USER, TinyProxy

pytestmark = pytest.mark.drill
TOKEN = re.compile(r"\d+:\d+:\d+:[0-9a-f]{160}")
WRONG_PROXY_PASSWORD = "Wr0ng-Pr0xy-" + secrets.token_hex(8)
API_TOKEN = "lb-api-" + secrets.token_urlsafe(24)
FAULTS = [("http_5xx", {}), ("malformed_json", {}), ("hang", {}), ("rate_limit_storm", {"retry_after_s": 1}),
          ("ws_drop", {}), ("ws_shutdown", {"close_in_ms": 200})]


def find_leaks(where: str, text: str, secret_values: list[str]) -> list[str]:
    leaks = []
    lowered = text.lower()
    for value in secret_values:
        bare = value[2:] if value.startswith("0x") else value
        if bare.lower() in lowered:
            leaks.append(f"{where}: contains a secret ({bare[:6]}...)")
    if TOKEN.search(text):
        leaks.append(f"{where}: contains a Lighter auth token")
    return leaks


def routes(store_dir: Path) -> tuple[list[str], list[str]]:
    """GET rules and WebSocket rules of the real app (built in-process only to read its URL map)."""
    from app import create_app
    from core.settings import from_env

    app = create_app(from_env({"CACHE_DIR": str(store_dir)}))
    http, ws = [], []
    for rule in app.url_map.iter_rules():
        if getattr(rule, "websocket", False):
            ws.append(rule.rule)
        elif "GET" in (rule.methods or ()):
            http.append(rule.rule)
    return sorted(http), sorted(ws)


class StreamCollector:
    """A Lighter-style /stream client subscribing to every channel of every account; keeps every frame."""

    def __init__(self, url: str, accounts: list[int]) -> None:
        self.frames: list[str] = []
        self.conn = connect(url, max_size=None, open_timeout=10, close_timeout=2)
        for index in accounts:
            for channel in ("account_all", "user_stats", "account_all_orders"):
                self.conn.send(json.dumps({"type": "subscribe", "channel": f"{channel}/{index}"}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.frames.append(self.conn.recv(timeout=0.5))
            except TimeoutError:
                continue
            except ConnectionClosed:
                return

    def close(self) -> None:
        self._stop.set()
        self.conn.close()
        self._thread.join(timeout=5)


def test_no_secret_anywhere(tmp_path: Path, tinyproxy: TinyProxy) -> None:
    wrong_proxy = f"http://{PROXY_USER}:{WRONG_PROXY_PASSWORD}@127.0.0.1:{tinyproxy.port}"

    def proxied_groups(sim) -> dict[str, str]:  # noqa: ANN001
        env: dict[str, str] = {}
        for group, account in ((2, sim.control.accounts()[2]), (3, sim.control.accounts()[3])):
            prefix = f"Lighter_{group}_1_"
            env.update({prefix + "Account_Index": str(account["account_index"]),
                        prefix + "API_KEY_Index": str(account["api_key_index"]),
                        prefix + "PRIVATE": account["private_key"]})
        env["Lighter_2_PROXY_1_URL"] = tinyproxy.colon_form
        env["Lighter_3_PROXY_1_URL"] = wrong_proxy
        return env

    store_dir = tmp_path / "store"
    # Every route is tried with wrong and missing tokens: far past the refused-token budget (held in test_edges).
    web_overrides = {"API_TOKEN": API_TOKEN, "LOG_LEVEL": "DEBUG", "WEB_AUTH_FAILURES": "100000"}
    with live_stack(tmp_path, {"CACHE_DIR": str(store_dir)}, accounts=2, sim_flags={"accounts": 4},
                    worker_overrides={"LOG_LEVEL": "DEBUG"}, web_overrides=web_overrides,
                    extra_worker_env=proxied_groups, required=lambda env: [
                        int(v) for k, v in env.items() if k.endswith("_Account_Index") and not k.startswith(
                            "Lighter_3_")]) as stack:
        keys = [a["private_key"] for a in stack.sim.control.accounts()]
        secret_values = keys + [PROXY_PASSWORD, WRONG_PROXY_PASSWORD, API_TOKEN]
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        served: list[tuple[str, str]] = []
        watcher = WsWatcher(f"{stack.web.ws_url}?token={API_TOKEN}", name="ws")
        http_rules, ws_rules = routes(tmp_path / "routes-store")
        stream = (StreamCollector(f"ws://127.0.0.1:{stack.web.port}/stream?auth={API_TOKEN}", stack.accounts)
                  if "/stream" in ws_rules else None)
        try:
            # Error paths: each fault until the worker recorded it, then cleared.
            control = stack.sim.control
            broken = str(stack.sim.control.accounts()[3]["account_index"])  # group 3: its errors never stop

            def new_error(since: int) -> bool:
                errors = stack.get("/api/status", headers=auth).json()["errors"]
                return any(e["at"] >= since and broken not in e["where"] and "group3" not in e["where"]
                           for e in errors)

            for kind, params in FAULTS:
                started = now_ms()
                control.add_fault(kind, **params)
                stack.wait_until(lambda: new_error(started), 10, f"an error recorded under {kind}", interval=0.1)
                control.clear_faults()
            stack.wait_until(lambda: stack.get("/api/status", headers=auth).json()["errors"], 5,
                             "the wrong-password proxy's errors in status")

            # Every GET route, with and without the token (refusals are responses too).
            urls = []
            static = Path(__file__).resolve().parents[2] / "app" / "dashboard" / "static"
            for rule in http_rules:
                if "<index>" in rule:
                    urls += [rule.replace("<index>", str(i)) for i in stack.accounts + [999999999]]
                elif "<path:filename>" in rule:
                    urls += [rule.replace("<path:filename>", p.name) for p in static.iterdir()]
                elif "<" not in rule:
                    urls.append(rule)
            for index in stack.accounts:  # Lighter-compatible routes want their query parameters
                urls += [f"/api/v1/account?by=index&value={index}",
                         f"/api/v1/accountActiveOrders?account_index={index}",
                         f"/api/v1/accountActiveOrders?account_index={index}&auth={API_TOKEN}"]
            urls += [f"/api/accounts/1?token={API_TOKEN}", "/nope", "/api/nope"]
            for url in urls:
                for headers in (auth, {}, {"Accept": "application/json"}, {"Authorization": "Bearer wrong"}):
                    response = stack.get(url, headers=headers)
                    served.append((f"GET {url} -> {response.status_code}",
                                   "\n".join(f"{k}: {v}" for k, v in response.headers.items()) + "\n" + response.text))
            status = stack.get("/api/status", headers=auth).json()
            watcher.wait_for(lambda w: w.count("status") >= 3 and w.updates >= 3, 10, "/ws traffic")
        finally:
            watcher.close()
            if stream is not None:
                stream.close()
        web_log = stack.web.log()
    worker_log = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))

    corpus = served + [("/ws message", json.dumps(m)) for _, m in watcher.messages]
    corpus += [("/stream frame", f) for f in (stream.frames if stream else [])]
    corpus += [("worker output", worker_log), ("web output", web_log)]
    corpus += [(f"store file {p.name}", p.read_bytes().decode("latin-1")) for p in store_dir.rglob("*") if p.is_file()]
    leaks = [leak for where, text in corpus for leak in find_leaks(where, text, secret_values)]
    print(f"drill: scanned {len(corpus)} items, {sum(len(t) for _, t in corpus) // 1024} KiB; "
          f"routes {len(http_rules)} HTTP + {ws_rules}; {len(urls)} URLs x 4 header sets")
    assert leaks == [], leaks[:20]
    # The scanner itself finds what it looks for (a key in any case, with or without 0x, and a token shape).
    assert find_leaks("self-test", "x" + keys[0].upper(), secret_values)
    assert find_leaks("self-test", f"auth=1700000000:7:4:{'ab' * 80}", [])

    # The scan looked at real material: both proxied egresses ran, errors were logged, everything was fetched.
    egresses = {e["id"]: e for e in status["egresses"]}
    assert {"direct", "group2-proxy1", "group3-proxy1"} <= set(egresses)
    assert egresses["group2-proxy1"]["proxy"] == f"http://{PROXY_USER}:***@127.0.0.1:{tinyproxy.port}"
    assert egresses["group2-proxy1"]["requests"] > 0 and egresses["group3-proxy1"]["errors"] > 0
    assert "DEBUG" in worker_log and "egress group3-proxy1" in worker_log and len(worker_log) > 10_000
    assert any("GET /api/status -> 200" == where for where, _ in served)
    assert any(where.startswith("GET /api/openapi.json -> 200") for where, _ in served)
    assert any(where.startswith("GET /metrics -> 200") for where, _ in served)
    assert any(where.startswith("GET /static/dashboard.js -> 200") for where, _ in served)
    assert watcher.count("snapshot") >= 3 and (stream is None or len(stream.frames) > 3)
