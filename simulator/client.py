"""A small synchronous client for the simulator's `/_sim/` control API (used by tests and the demo)."""
from __future__ import annotations

from typing import Any

import requests


class SimControl:
    """`SimControl("http://127.0.0.1:8765").accounts()` and friends; every call raises on HTTP errors."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # a proxy from the environment must never sit between us and loopback

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        resp = self.session.request(method, f"{self.base_url}/_sim/{path}", json=body, timeout=self.timeout)
        if resp.status_code >= 400:
            raise RuntimeError(f"simulator {method} /_sim/{path} -> {resp.status_code}: {resp.text}")
        return resp.json()

    def accounts(self) -> list[dict]:
        """[{account_index, api_key_index, private_key, public_key, l1_address}, ...]"""
        return self._call("GET", "accounts")["accounts"]

    def state(self, account_index: int) -> dict:
        """{"account": DetailedAccount, "orders": [Order], "user_stats": {...}, "marks": {...}}"""
        return self._call("GET", f"state/{account_index}")

    def counters(self) -> dict:
        return self._call("GET", "counters")

    def reset_counters(self) -> None:
        self._call("POST", "counters/reset")

    def reset_rate_limits(self) -> None:
        self._call("POST", "ratelimit/reset")

    def add_fault(self, kind: str, rest: list[str] | str | None = None, ws: list[str] | str | None = None,
                  duration_s: float | None = None, **params: Any) -> str:
        """Inject a fault; returns its id. With neither `rest` nor `ws` it applies everywhere it can."""
        body = {"kind": kind, "scope": {"rest": rest, "ws": ws}, "duration_s": duration_s, "params": params}
        return self._call("POST", "faults", body)["id"]

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def remove_fault(self, fault_id: str) -> None:
        self._call("DELETE", f"faults/{fault_id}")

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def geo_block(self, enabled: bool) -> None:
        self._call("POST", "geo-block", {"enabled": enabled})

    def set_tier(self, tier: str) -> None:
        self._call("POST", "tier", {"tier": tier})

    def pause(self) -> None:
        self._call("POST", "market", {"running": False})

    def resume(self) -> None:
        self._call("POST", "market", {"running": True})

    def step(self) -> dict:
        return self._call("POST", "step")

    def trade(self, account_index: int, market_id: int, size: str, is_ask: bool) -> dict:
        """Fill a market trade now; returns {"account": DetailedAccount after the fill}."""
        return self._call("POST", f"accounts/{account_index}/trade",
                          {"market_id": market_id, "size": str(size), "is_ask": is_ask})
