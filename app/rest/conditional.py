"""The conditional GET answer of /api/accounts[/<index>], pure: the 200 or 304 with its ETag, Cache-Control,
X-Poll-Interval and the data's freshness (X-Data-As-Of, X-Data-Age-Ms), built by this one function for both the
Flask views and the pre-Flask shortcut, so the two give the same answer (byte for byte but for the age).

The ETag is the content version: it holds across confirmations, so a poller of a quiet account gets 304s, and
the freshness headers tell it the data it holds is still current (docs/api.md)."""
from __future__ import annotations

from typing import Any, NamedTuple

import orjson
from werkzeug.http import parse_etags

from app.status import account_body, etag, list_etag, oldest_as_of
from core.snapshot import AccountBody, Snapshot, data_version, now_ms

Body = AccountBody | dict[str, Any]
AS_OF_HEADER = "X-Data-As-Of"    # ms since the epoch: when upstream last vouched for the data
AGE_HEADER = "X-Data-Age-Ms"     # ms: its age when the answer was built


class Resource(NamedTuple):
    """What a conditional route serves: the body and its ETag value (unquoted; sent weak)."""

    body: Body
    tag: str
    as_of: int | None = None  # ms: upstream last vouched for this data (the oldest of a list); None: unknown


class Answer(NamedTuple):
    status: int                       # 200 or 304
    headers: list[tuple[str, str]]    # ETag, Cache-Control, X-Poll-Interval[, X-Data-As-Of, X-Data-Age-Ms]
    body: Body | None                 # None for the 304

    @property
    def data(self) -> bytes:
        """The body's bytes: encoded on demand, so a 304 (or a 200 left to Flask) never encodes it."""
        return b"" if self.body is None else orjson.dumps(self.body)


def account_resource(snapshot: Snapshot, ttl_s: float) -> Resource:
    body = account_body(snapshot, ttl_s)
    return Resource(body, etag(data_version(body), body["stale"]), body.get("as_of"))


def list_resource(snapshots: list[Snapshot], ttl_s: float) -> Resource:
    bodies = [account_body(s, ttl_s) for s in snapshots]
    return Resource({"accounts": bodies, "server_time": now_ms()}, list_etag(bodies), oldest_as_of(bodies))


def answer(resource: Resource, poll_s: float, if_none_match: str | None) -> Answer:
    """The 304 when `if_none_match` (the raw header) names the resource's tag, weakly; else the 200."""
    tag = resource.tag
    weak = f'W/"{tag}"'
    headers = [("ETag", weak), ("Cache-Control", "no-cache"), ("X-Poll-Interval", f"{poll_s:g}")]
    if resource.as_of is not None:
        headers += [(AS_OF_HEADER, str(resource.as_of)), (AGE_HEADER, str(max(0, now_ms() - resource.as_of)))]
    # Fast path for what pollers send back (our own header); else werkzeug's parser, as Flask's request uses.
    if if_none_match and (if_none_match == weak or parse_etags(if_none_match).contains_weak(tag)):
        return Answer(304, headers, None)
    return Answer(200, headers, resource.body)
