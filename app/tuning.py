"""Worker tuning knobs (timeouts, keepalive, backoff): part of Settings, parsed by from_env from `WORKER_*`."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping



@dataclass(frozen=True)
class Tuning:
    """Defaults suit the live venue; tests shrink them. Each field maps to `WORKER_<FIELD>` in the env."""

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

    def ping_interval(self, cache_ttl: float) -> float:
        """Pings double as liveness proof for `as_of`, so they come faster than the staleness TTL."""
        if self.ws_ping_s > 0:
            return self.ws_ping_s
        return min(15.0, max(1.0, cache_ttl / 3))


def tuning_from_env(environ: Mapping[str, str]) -> Tuning:
    """Build Tuning from `WORKER_*` variables; a bad value raises SettingsError naming the variable."""
    from app.settings import SettingsError  # settings imports this module: import at call time

    values: dict[str, object] = {}
    for spec in fields(Tuning):
        name = f"WORKER_{spec.name.upper()}"
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if spec.type in ("bool", bool):
            if raw.lower() not in ("0", "1", "true", "false", "yes", "no"):
                raise SettingsError(f"{name} must be 0 or 1 (got {raw!r})")
            values[spec.name] = raw.lower() in ("1", "true", "yes")
            continue
        try:
            number = int(raw) if spec.type in ("int", int) else float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number (got {raw!r})") from None
        if number < 0 or number != number:
            raise SettingsError(f"{name} must not be negative (got {raw!r})")
        values[spec.name] = number
    tuning = Tuning(**values)
    if not 0 <= tuning.headroom < 1:
        raise SettingsError("WORKER_HEADROOM must be in [0, 1)")
    if tuning.rest_concurrency < 1:
        raise SettingsError("WORKER_REST_CONCURRENCY must be at least 1")
    return tuning
