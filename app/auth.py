"""API_TOKEN checks: Bearer header everywhere, `?token=` only on /ws (browsers cannot set WebSocket headers)."""
from __future__ import annotations

import hmac

from flask import Request

from app.settings import Settings


def presented_token(request: Request, allow_query: bool) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if allow_query:
        return request.args.get("token") or None
    return None


def authorized(settings: Settings, request: Request, allow_query: bool = False) -> bool:
    """True when no token is configured or the request presents it (constant-time comparison)."""
    if settings.api_token is None:
        return True
    token = presented_token(request, allow_query)
    if token is None:
        return False
    return hmac.compare_digest(token.encode(), settings.api_token.reveal().encode())
