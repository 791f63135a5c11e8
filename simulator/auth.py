"""Auth-token checks (pure). Signatures cannot be verified offline (doc §3), so format, expiry,
account and API key index are what the simulator enforces."""
from __future__ import annotations

import re

from . import errors

MAX_AHEAD_S = 8 * 3600  # the venue rejects expiries more than 8 h ahead
RO_MAX_AHEAD_S = 10 * 365 * 86_400  # read-only tokens may live up to 10 years
_TOKEN = re.compile(r"^(\d+):(\d+):(\d+):([0-9a-f]{160})$")
_RO_TOKEN = re.compile(r"^ro:(\d+):(single|all):(\d+):([0-9a-f]+)$")


def check_token(token: str | None, account_index: int, api_key_index: int | None, now_s: float) -> dict | None:
    """Return None if `token` may read `account_index`, else the Lighter error body.

    `api_key_index` is the key registered for the account (None when the account is unknown:
    then only format and expiry are checked and the caller reports 21100).
    """
    if not token:
        return errors.AUTH_EMPTY
    m = _TOKEN.match(token)
    if m:
        expiry, acct, key = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if expiry <= now_s or expiry > now_s + MAX_AHEAD_S:
            return errors.AUTH_BAD_DEADLINE
        if acct != account_index:
            return errors.AUTH_WRONG_ACCOUNT
        if api_key_index is not None and key != api_key_index:
            # Live, the signature would not match the key registered for this index.
            return errors.AUTH_BAD_DEADLINE
        return None
    m = _RO_TOKEN.match(token)
    if m:
        acct, expiry = int(m.group(1)), int(m.group(3))
        if expiry <= now_s or expiry > now_s + RO_MAX_AHEAD_S:
            return errors.AUTH_BAD_DEADLINE
        return None if acct == account_index else errors.AUTH_WRONG_ACCOUNT
    return errors.AUTH_BAD_STRING


def request_token(headers: dict, query: dict) -> str | None:
    """The token from the `Authorization` header (no Bearer prefix) or the `auth` query parameter."""
    return headers.get("Authorization") or query.get("auth") or None
