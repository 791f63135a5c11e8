"""Body transforms for live-like leniency and schema drift (pure; they mutate and return the body)."""
from __future__ import annotations

from typing import Any

# Fields a newer server might add; clients must keep working when they appear (doc §2.5).
DRIFT_FIELDS = {"sim_drift_note": "field added by a newer server", "sim_drift_version": 2}


def lenient(body: Any) -> Any:
    """Apply the leniencies seen in live-captured account data (doc §2.1): `can_rfq_market_ids: null`,
    no `pool_info` / `agent_enabled` / `bo_positions` / `margin_set_flag`, and no `next_cursor`."""
    if isinstance(body, dict):
        if "accounts" in body and "total" in body:
            body.pop("next_cursor", None)
        if "account_index" in body and "pool_info" in body:
            body["can_rfq_market_ids"] = None
            for key in ("pool_info", "agent_enabled", "bo_positions"):
                body.pop(key, None)
        body.pop("margin_set_flag", None)
        for value in body.values():
            lenient(value)
    elif isinstance(body, list):
        for value in body:
            lenient(value)
    return body


def drift(body: Any) -> Any:
    """Add unknown fields to every object in the body."""
    if isinstance(body, dict):
        for value in body.values():
            drift(value)
        body.update(DRIFT_FIELDS)
    elif isinstance(body, list):
        for value in body:
            drift(value)
    return body
