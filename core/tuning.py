"""Tuning knobs (timeouts, bounds, periods): one frozen object for the worker, one for the web, both in Settings.

Defaults suit the live venue; tests shrink them. Each field maps to `WORKER_<FIELD>` or `WEB_<FIELD>` in the env.
Protocol limits (message sizes, Lighter's subscription caps) are not knobs: they are constants where they apply.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from core.env import SettingsError, flag, number


@dataclass(frozen=True)
class WorkerTuning:
    """The worker's knobs."""

    ws: bool = True                   # WORKER_WS=0 runs REST-only (the mode the worker falls back to anyway)
    ws_ping_s: float = 0.0            # our app-level ping; 0 = CACHE_TTL/3 in [1, 15] (well inside the 2 min rule)
    ws_silence_s: float = 20.0        # watchdog: a socket silent this long (despite our pings) is dead
    ws_connect_timeout_s: float = 10.0  # upgrade + waiting for the `connected` frame
    ws_retry_s: float = 60.0          # REST-only mode: how often to try the WebSocket again
    http_timeout_s: float = 5.0
    headroom: float = 0.10            # share of the upstream budget never planned for
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 30.0
    healthy_after_s: float = 60.0     # a connection must stay up this long before backoff resets
    token_ttl_s: float = 3600.0
    token_refresh_before_s: float = 300.0
    status_every_s: float = 1.0
    summary_every_s: float = 60.0
    rest_concurrency: int = 4         # requests in flight per egress
    budget_window_s: float = 60.0     # the upstream's rate-limit window (Lighter's is a minute; tests shrink it)
    lease_ttl_s: float = 2.5          # Redis writer lease expiry: a killed writer's successor waits at most this
    lease_renew_s: float = 0.5        # lease renewal and store self-check period (how soon a wiped store is seen)
    standby_poll_s: float = 0.2       # how often a standby tries to take the lease

    def ping_interval(self, cache_ttl: float) -> float:
        """Pings double as liveness proof for `as_of`, so they come faster than the staleness TTL."""
        if self.ws_ping_s > 0:
            return self.ws_ping_s
        return min(15.0, max(1.0, cache_ttl / 3))


@dataclass(frozen=True)
class WebTuning:
    """The web process's knobs (per process: gunicorn runs one per worker)."""

    ws_queue_frames: int = 256        # frames a /ws client may owe before it is closed as too slow (4008)
    ws_heartbeat_s: float = 20.0      # /ws heartbeat (and /stream ping) period
    ws_close_grace_s: float = 5.0     # how long a closing client has to answer our close frame
    status_every_s: float = 1.0       # how often the watcher re-reads the worker's status
    status_refresh_s: float = 5.0     # an unchanged status is pushed to /ws clients this often
    mirror_max_age_s: float = 1.0     # REST re-reads the tracked list and account keys at most this often
    file_poll_s: float = 0.02         # file store: how often the watcher polls `head` for changes
    rate_limit_keys: int = 10_000     # client windows the REST fast path remembers
    # Hostile edges (docs/security.md): each bound is held by a test named there.
    ws_backlog_bytes: int = 1_048_576  # bytes a WebSocket client may owe before it is closed as too slow (4008)
    auth_failures: int = 20           # refused tokens per client address and window, then 429 / close 1008
    auth_failure_window_s: float = 60.0
    stream_auth_timeout_s: float = 10.0  # a token-less /stream connection must authenticate a subscribe by then
    ws_admit_per_s: int = 500         # WebSocket handshakes admitted per second per process, then 1013
    ws_admit_per_address_per_s: int = 200  # ... and per client address
    header_timeout_s: float = 10.0    # a connection must send its request line and headers within this
    conns_per_address: int = 256      # HTTP connections open at once per client address (WebSockets excluded)


Tuned = TypeVar("Tuned", WorkerTuning, WebTuning)


def from_env(cls: type[Tuned], prefix: str, environ: Mapping[str, str]) -> Tuned:
    """Build `cls` from `{prefix}<FIELD>` variables; a bad value raises SettingsError naming the variable."""
    values: dict[str, Any] = {}
    for spec in fields(cls):
        name = f"{prefix}{spec.name.upper()}"
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if spec.type in ("bool", bool):
            values[spec.name] = flag(name, raw)
            continue
        values[spec.name] = number(environ, name, 0, minimum=0, integer=spec.type in ("int", int))
    return cls(**values)


def worker_from_env(environ: Mapping[str, str]) -> WorkerTuning:
    tuning = from_env(WorkerTuning, "WORKER_", environ)
    if not 0 <= tuning.headroom < 1:
        raise SettingsError("WORKER_HEADROOM must be in [0, 1)")
    if tuning.rest_concurrency < 1:
        raise SettingsError("WORKER_REST_CONCURRENCY must be at least 1")
    if tuning.budget_window_s < 1:
        raise SettingsError("WORKER_BUDGET_WINDOW_S must be at least 1")
    if not 0 < tuning.lease_renew_s < tuning.lease_ttl_s:
        raise SettingsError("WORKER_LEASE_RENEW_S must be more than 0 and less than WORKER_LEASE_TTL_S")
    if tuning.standby_poll_s <= 0:
        raise SettingsError("WORKER_STANDBY_POLL_S must be more than 0")
    return tuning


def web_from_env(environ: Mapping[str, str]) -> WebTuning:
    tuning = from_env(WebTuning, "WEB_", environ)
    for name in ("ws_queue_frames", "rate_limit_keys"):
        if getattr(tuning, name) < 1:
            raise SettingsError(f"WEB_{name.upper()} must be at least 1")
    for name in ("ws_heartbeat_s", "status_every_s", "status_refresh_s", "file_poll_s"):
        if getattr(tuning, name) <= 0:
            raise SettingsError(f"WEB_{name.upper()} must be more than 0")
    for name in ("ws_backlog_bytes", "auth_failures", "ws_admit_per_s", "ws_admit_per_address_per_s",
                 "conns_per_address", "auth_failure_window_s"):  # hostile edges: a window under 1 s is no window
        if getattr(tuning, name) < 1:
            raise SettingsError(f"WEB_{name.upper()} must be at least 1")
    for name in ("stream_auth_timeout_s", "header_timeout_s"):
        if getattr(tuning, name) <= 0:
            raise SettingsError(f"WEB_{name.upper()} must be more than 0")
    return tuning
