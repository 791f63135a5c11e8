"""Our API_TOKEN, presented the ways Lighter clients present Lighter's auth token (pure; no Flask).

The SDK sends `authorization: <token>` with no scheme; older SDKs and ccxt use the `auth` query parameter; our own
API uses `Authorization: Bearer <token>`. All three are accepted. A token in an SDK `ApiClient(header_name=...)`
default header and the per-call `authorization` argument can arrive joined by ", " in one header: each part counts.
"""
from __future__ import annotations

import hmac

from app.compat.errors import AUTH_INVALID, AUTH_MISSING, LighterError


def candidates(header: str | None, query: str | None) -> list[str]:
    """Every token the request presents, header first."""
    found: list[str] = []
    for part in [header or ""] + (header or "").split(","):
        value = part.strip()
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == "bearer" and rest.strip():
            value = rest.strip()
        if value and value not in found:
            found.append(value)
    if query and query.strip():
        found.append(query.strip())
    return found


def matches(expected: str, presented: list[str]) -> bool:
    """Constant-time comparison against each presented token."""
    wanted = expected.encode()
    return any(hmac.compare_digest(token.encode(), wanted) for token in presented)


def check(expected: str | None, presented: list[str]) -> LighterError | None:
    """None when access is allowed, else Lighter's error: 400/20001 nothing presented, 401/20013 wrong token.

    Without API_TOKEN everything is open and whatever the bot sends (its Lighter token, or nothing) is ignored.
    """
    if expected is None:
        return None
    if not presented:
        return AUTH_MISSING
    return None if matches(expected, presented) else AUTH_INVALID
