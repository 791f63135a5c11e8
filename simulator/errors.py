"""Lighter's error bodies (protocol doc §4), spelled once."""
from __future__ import annotations

ACCOUNT_NOT_FOUND = {"code": 21100, "message": "account not found"}
INVALID_L1_ADDRESS = {"code": 21103, "message": "invalid account l1 address"}
INVALID_PARAM = {"code": 20001, "message": "invalid param "}
AUTH_EMPTY = {"code": 20001, "message": "invalid param : auth query param and Authorization header are empty"}
AUTH_BAD_STRING = {"code": 20013, "message": "invalid auth string"}
AUTH_BAD_DEADLINE = {"code": 20013, "message": "invalid auth: invalid deadline"}
# Not observed live: which text the venue uses for a token of another account is unknown [INF].
AUTH_WRONG_ACCOUNT = {"code": 20013, "message": "invalid auth: account index mismatch"}
NOT_FOUND = {"code": 29404, "message": "not found"}
INTERNAL = {"code": 29500, "message": "internal server error"}
TOO_MANY_REQUESTS = {"code": 23000, "message": "Too Many Requests!"}
RESTRICTED = {"code": 20558, "message": "You are accessing Lighter from a restricted jurisdiction. "
                                        "For more information, see the https://lighter.xyz/terms"}

# WebSocket error codes (300xx family).
WS_INVALID_JSON = {"code": 30000, "message": "Invalid JSON"}
WS_INVALID_TYPE = {"code": 30001, "message": "Invalid Type"}
WS_NOT_SUBSCRIBED = {"code": 30002, "message": "Not Subscribed"}
WS_ALREADY_SUBSCRIBED = {"code": 30003, "message": "Already Subscribed"}
WS_INVALID_CHANNEL = {"code": 30005, "message": "Invalid Channel"}


def ws_auth_required(channel: str) -> dict:
    """The error for a private channel subscribed without a token; channel is in ':' form."""
    return {"code": 20001, "message": f"invalid param : auth field is required: {channel}"}
