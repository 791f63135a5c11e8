"""WebSocket close codes the web sends or records, named once (RFC 6455 7.4.1; 4000-4999 are private use).

/ws and /stream share them; docs/websocket.md lists what each means to a client.
"""
from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000            # echo of the client's own close
    GOING_AWAY = 1001        # server shutting down (SIGTERM): reconnect with `since`
    PROTOCOL_ERROR = 1002    # the client broke the WebSocket protocol (sent by the protocol library)
    ABNORMAL = 1006          # never sent: the connection ended without a close frame
    INVALID_DATA = 1007      # invalid UTF-8 in a text message
    POLICY = 1008            # bad query, bad auth on /stream, too many bad or too many messages
    TOO_BIG = 1009           # a client message over the size bound (sent by the protocol library)
    INTERNAL_ERROR = 1011    # a handler failed, or the store failed during the initial sync
    TRY_AGAIN_LATER = 1013   # server full (WS_MAX_CLIENTS)
    UNAUTHORIZED = 4001      # /ws: missing or wrong token
    TOO_SLOW = 4008          # fell behind: more frames owed than the queue bound ("1008" would read as a breach)
