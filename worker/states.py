"""The worker's upstream WebSocket states and feed modes, named once (status record values, docs/worker.md)."""
from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class WsState(StrEnum):
    """Where an egress's upstream WebSocket is (status `egresses[].ws.state`)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    READONLY = "readonly"    # connected with ?readonly=true after a geo-block refusal
    REST_ONLY = "rest-only"  # refused twice: REST is the whole feed until the next probe

    @property
    def live(self) -> bool:
        """A live socket feeds the sections, so REST only reconciles."""
        return self in (WsState.CONNECTED, WsState.READONLY)


class Mode(StrEnum):
    """How an egress (status `egresses[].ws.mode`) and the worker (status `mode`, the worst egress) are fed."""

    WS = "ws"
    WS_READONLY = "ws-readonly"
    REST_ONLY = "rest-only"


MODES_WORST_FIRST = (Mode.REST_ONLY, Mode.WS_READONLY, Mode.WS)


def worst_mode(modes: Iterable[Mode]) -> Mode:
    """The worst of `modes` (the worker's own mode); `ws` when there are none."""
    return min(modes, key=MODES_WORST_FIRST.index, default=Mode.WS)
