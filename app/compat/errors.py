"""Lighter's error codes as the Lighter-compatible routes send them, each named once (docs/lighter-protocol.md
(error codes)). REST bodies are `{"code", "message"}` with `http_status`; /stream sends the nested error frame
(`frames.error`), where the HTTP status does not apply."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LighterError:
    code: int
    message: str
    http_status: int | None = None  # the status Lighter's REST answers with; None: a /stream-only error


# Both REST and /stream.
ACCOUNT_NOT_FOUND = LighterError(21100, "account not found", 400)
AUTH_INVALID = LighterError(20013, "invalid auth string", 401)

# REST.
INVALID_L1_ADDRESS = LighterError(21103, "invalid account l1 address", 400)
INVALID_PARAM = LighterError(20001, "invalid param ", 400)
AUTH_MISSING = LighterError(20001, "invalid param : auth query param and Authorization header are empty", 400)
ORDERS_NOT_TRACKED = LighterError(20001, "invalid param : active orders are not tracked for this account "
                                         "(no API key configured on the broadcaster)", 400)
ORDERS_UNAVAILABLE = LighterError(29500, "internal server error: active orders not fetched yet", 503)
TOO_MANY_REQUESTS = LighterError(23000, "Too Many Requests!", 429)

# /stream.
INVALID_JSON = LighterError(30000, "Invalid JSON")
INVALID_TYPE = LighterError(30001, "Invalid Type")
NOT_SUBSCRIBED = LighterError(30002, "Not Subscribed")
ALREADY_SUBSCRIBED = LighterError(30003, "Already Subscribed")
FETCH_FAILED = LighterError(30004, "Fetch Failed")
INVALID_CHANNEL = LighterError(30005, "Invalid Channel")
NOT_SUPPORTED = LighterError(30006, "Not Supported")
TOO_MANY_MESSAGES = LighterError(30009, "Too Many Websocket Messages")
TOO_MANY_SUBSCRIPTIONS = LighterError(23001, "Too Many Subscriptions")


def auth_required(channel: str) -> LighterError:
    """A private subscribe without `auth` (code 20001; names the channel with `:`)."""
    return LighterError(20001, f"invalid param : auth field is required: {channel}")


class LighterRefusal(ValueError):
    """A request Lighter would refuse, carrying the error to answer with."""

    def __init__(self, error: LighterError) -> None:
        super().__init__(error.message)
        self.error = error
