"""The conditional GET answer of /api/accounts[/<index>], pure: the 200 or 304 with its ETag, Cache-Control and
X-Poll-Interval, built by this one function for both the Flask views and the pre-Flask shortcut, so the two give
the same answer byte for byte."""
from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from werkzeug.http import parse_etags

from app.status import account_body, etag, list_etag
from core.snapshot import AccountBody, Snapshot, now_ms

Body = AccountBody | dict[str, Any]


class Resource(NamedTuple):
    """What a conditional route serves: the body and its ETag value (unquoted; sent weak)."""

    body: Body
    tag: str


class Answer(NamedTuple):
    status: int                       # 200 or 304
    headers: list[tuple[str, str]]    # ETag, Cache-Control, X-Poll-Interval, in this order
    body: Body | None                 # None for the 304

    @property
    def data(self) -> bytes:
        """The body's bytes: encoded on demand, so a 304 (or a 200 left to Flask) never encodes it."""
        return b"" if self.body is None else orjson.dumps(self.body)


def account_resource(snapshot: Snapshot, ttl_s: float) -> Resource:
    body = account_body(snapshot, ttl_s)
    return Resource(body, etag(body.get("seq", 0), body["stale"]))


def list_resource(snapshots: list[Snapshot], ttl_s: float) -> Resource:
    bodies = [account_body(s, ttl_s) for s in snapshots]
    return Resource({"accounts": bodies, "server_time": now_ms()}, list_etag(bodies))


def answer(resource: Resource, poll_s: float, if_none_match: str | None) -> Answer:
    """The 304 when `if_none_match` (the raw header) names the resource's tag, weakly; else the 200."""
    tag = resource.tag
    weak = f'W/"{tag}"'
    headers = [("ETag", weak), ("Cache-Control", "no-cache"), ("X-Poll-Interval", f"{poll_s:g}")]
    # Fast path for what pollers send back (our own header); else werkzeug's parser, as Flask's request uses.
    if if_none_match and (if_none_match == weak or parse_etags(if_none_match).contains_weak(tag)):
        return Answer(304, headers, None)
    return Answer(200, headers, resource.body)
