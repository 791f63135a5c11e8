"""Egresses: which network path (direct or one proxy) carries which accounts, with per-egress counters."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from core.accounts import Account, Proxy
from core.backoff import Retry
from core.settings import Settings
from core.tuning import WorkerTuning
from worker.states import Mode, WsState
from worker.upstream.budget import SHARE_REST_ONLY, SHARE_WS, Plan, UpstreamBudget, plan

DIRECT = "direct"


@dataclass
class WsStatus:
    """What status shows about an egress's upstream WebSocket."""

    state: WsState = WsState.CONNECTING
    since: int = 0
    last_frame_at: int | None = None
    reconnects: int = 0
    mode: Mode = Mode.WS


@dataclass
class Egress:
    """One way out to Lighter. Owns its HTTP session, budget, backoff and counters."""

    id: str
    proxy: Proxy | None
    accounts: list[Account]
    budget: UpstreamBudget
    retry: Retry
    session: requests.Session
    plan: Plan
    ws: WsStatus = field(default_factory=WsStatus)
    requests: int = 0
    rate_limited: int = 0
    errors: int = 0

    @property
    def keyed(self) -> list[Account]:
        return [a for a in self.accounts if not a.public_only]

    def replan(self, settings: Settings) -> None:
        """Recompute effective intervals: while no WebSocket is live, REST is the whole feed and may use
        the whole budget; with a live one it only reconciles."""
        share = SHARE_WS if self.ws.state.live else SHARE_REST_ONLY
        self.plan = plan(settings.poll_interval, settings.orders_interval, len(self.accounts),
                         len(self.keyed), self.budget.usable, share, self.budget.window_s)

    def close(self) -> None:
        self.session.close()


def assign(settings: Settings) -> list[tuple[str, Proxy | None, list[Account]]]:
    """Group N's accounts go round-robin over group N's proxies; groups without proxies go direct."""
    routes: dict[str, tuple[Proxy | None, list[Account]]] = {}
    position: dict[int, int] = {}
    for account in settings.accounts:
        proxies = settings.proxies.get(account.group, ())
        if not proxies:
            routes.setdefault(DIRECT, (None, []))[1].append(account)
            continue
        slot = position.get(account.group, 0)
        position[account.group] = slot + 1
        number = slot % len(proxies)
        key = f"group{account.group}-proxy{number + 1}"
        routes.setdefault(key, (proxies[number], []))[1].append(account)
    return [(key, proxy, accounts) for key, (proxy, accounts) in routes.items()]


def make_session(proxy: Proxy | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # direct means direct: no HTTP(S)_PROXY or .netrc from the host
    session.headers.update({"Accept": "application/json", "User-Agent": "lighter-broadcaster-worker/1"})
    if proxy is not None:
        url = proxy.url.reveal()
        session.proxies = {"http": url, "https": url}
    return session


def build_egresses(settings: Settings, tuning: WorkerTuning, clock: Callable[[], float]) -> list[Egress]:
    egresses = []
    for key, proxy, accounts in assign(settings):
        # The tier's allowance applies per window (Lighter's is a minute; tests shorten it).
        budget = UpstreamBudget(settings.requests_per_minute_per_egress, clock, tuning.headroom,
                                tuning.budget_window_s)
        retry = Retry(clock, tuning.backoff_initial_s, cap=tuning.backoff_max_s,
                      healthy_after=tuning.healthy_after_s)
        egress = Egress(key, proxy, accounts, budget, retry, make_session(proxy), Plan(0, 0, False, None))
        egress.ws.mode = Mode.WS if tuning.ws else Mode.REST_ONLY
        egress.ws.state = WsState.CONNECTING if tuning.ws else WsState.REST_ONLY
        egress.replan(settings)
        egresses.append(egress)
    return egresses
