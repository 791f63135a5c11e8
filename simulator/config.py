"""Simulator settings: one frozen object built from the command line."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from .ratelimit import TIERS


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    accounts: int = 3
    seed: int = 1
    tier: str = "standard"
    rate_window_s: float = 60.0  # the tier's allowance applies per this window (Lighter's: a minute)
    geo_block: bool = False
    lenient: bool = False
    tick_ms: int = 500
    ws_ping_s: float = 30.0
    ws_idle_s: float = 120.0
    trust_forwarded: bool = False


def parse_args(argv: list[str] | None = None) -> SimConfig:
    """Parse CLI flags; bad values exit with a usage message before anything starts."""
    p = argparse.ArgumentParser(prog="python -m simulator", description="Local stand-in for Lighter's API.")
    p.add_argument("--host", default=SimConfig.host)
    p.add_argument("--port", type=int, default=SimConfig.port, help="0 picks a free port")
    p.add_argument("--accounts", type=int, default=SimConfig.accounts)
    p.add_argument("--seed", type=int, default=SimConfig.seed)
    p.add_argument("--tier", choices=TIERS, default=SimConfig.tier)
    p.add_argument("--rate-window-s", type=float, default=SimConfig.rate_window_s,
                   help="rate-limit window; the tier's allowance applies per window (tests shorten it)")
    p.add_argument("--geo-block", action="store_true", help="refuse WS upgrades without ?readonly=true")
    p.add_argument("--lenient", action="store_true", help="live-like, strict-invalid account shapes")
    p.add_argument("--tick-ms", type=int, default=SimConfig.tick_ms)
    p.add_argument("--ws-ping-s", type=float, default=SimConfig.ws_ping_s)
    p.add_argument("--ws-idle-s", type=float, default=SimConfig.ws_idle_s)
    p.add_argument("--trust-forwarded", action="store_true",
                   help="for loopback peers, take the egress from X-Forwarded-For's last hop")
    a = p.parse_args(argv)
    if a.accounts < 1 or a.tick_ms < 10 or a.ws_ping_s <= 0 or a.ws_idle_s <= 0 or not a.rate_window_s >= 1:
        p.error("--accounts >= 1, --tick-ms >= 10, --ws-ping-s > 0, --ws-idle-s > 0 and --rate-window-s >= 1 "
                "are required")
    return SimConfig(host=a.host, port=a.port, accounts=a.accounts, seed=a.seed, tier=a.tier,
                     rate_window_s=a.rate_window_s, geo_block=a.geo_block, lenient=a.lenient, tick_ms=a.tick_ms,
                     ws_ping_s=a.ws_ping_s, ws_idle_s=a.ws_idle_s, trust_forwarded=a.trust_forwarded)
