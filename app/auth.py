"""API_TOKEN checks: Bearer header everywhere, `?token=` only on /ws (browsers cannot set WebSocket headers)."""
from __future__ import annotations

import hmac

from flask import Request

from core.settings import Settings


def bearer(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, else None."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def presented_token(request: Request, allow_query: bool) -> str | None:
    token = bearer(request.headers.get("Authorization", ""))
    if token is not None:
        return token
    if allow_query:
        return request.args.get("token") or None
    return None


def authorized(settings: Settings, request: Request, allow_query: bool = False) -> bool:
    """True when no token is configured or the request presents it (constant-time comparison)."""
    return token_matches(settings, presented_token(request, allow_query))


def token_matches(settings: Settings, token: str | None) -> bool:
    """True when no token is configured or `token` is it (constant-time comparison)."""
    if settings.api_token is None:
        return True
    if token is None:
        return False
    return hmac.compare_digest(token.encode(), settings.api_token.reveal().encode())
