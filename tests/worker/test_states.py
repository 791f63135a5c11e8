"""States, modes and protocol names are StrEnums: the status record and the wire keep the same strings."""
from __future__ import annotations

import orjson

from worker.protocol import Channel, Control, channel_named, control_named
from worker.states import Mode, WsState, worst_mode


def test_members_serialize_as_their_values() -> None:
    record = {"mode": Mode.WS_READONLY, "ws": {"state": WsState.REST_ONLY, "mode": Mode.REST_ONLY}}
    assert orjson.dumps(record) == b'{"mode":"ws-readonly","ws":{"state":"rest-only","mode":"rest-only"}}'
    assert orjson.dumps({"type": Control.SUBSCRIBE, "channel": Channel.ACCOUNT_ALL_ORDERS.subscription(7)}) \
        == b'{"type":"subscribe","channel":"account_all_orders/7"}'
    assert f"{Channel.USER_STATS}" == "user_stats" and Channel.USER_STATS.echoed(7) == "user_stats:7"


def test_worst_mode_and_live_states() -> None:
    assert worst_mode([Mode.WS, Mode.REST_ONLY, Mode.WS_READONLY]) is Mode.REST_ONLY
    assert worst_mode([Mode.WS, Mode.WS_READONLY]) is Mode.WS_READONLY
    assert worst_mode([]) is Mode.WS  # no egress carries accounts
    assert {s for s in WsState if s.live} == {WsState.CONNECTED, WsState.READONLY}


def test_names_from_the_wire() -> None:
    assert channel_named("account") is Channel.ACCOUNT_ALL  # the older docs example's name
    assert channel_named("order_book") is None
    assert control_named("pong") is Control.PONG and control_named("unsubscribed") == "unsubscribed"
