"""Pure simulator logic: model determinism and fills, auth checks, rate windows, faults, shapes."""
from __future__ import annotations

from decimal import Decimal

import pytest

from simulator import auth, errors, shapes, views
from simulator.accounts import Account, apply_fill
from simulator.config import SimConfig, parse_args
from simulator.faults import FaultRegistry
from simulator.markets import MARKETS_BY_ID, fmt
from simulator.model import Model
from simulator.ratelimit import RateLimiter

NOW_MS = 1_800_000_000_000
SIG = "ab" * 80


def test_model_is_deterministic_per_seed() -> None:
    a, b, c = Model(7, 3, NOW_MS), Model(7, 3, NOW_MS), Model(8, 3, NOW_MS)
    for i in range(50):
        a.tick(NOW_MS + i)
        b.tick(NOW_MS + i)
    assert a.marks == b.marks and list(a.accounts) == list(b.accounts)
    assert [x.collateral for x in a.accounts.values()] == [x.collateral for x in b.accounts.values()]
    assert list(c.accounts) != list(a.accounts)


def test_market_keeps_moving_orders_and_positions() -> None:
    m = Model(1, 3, NOW_MS)
    seen, fills = set(), 0
    for i in range(300):
        ch = m.tick(NOW_MS + i * 100)
        fills += sum(len(f) for f in ch.fills.values())
        for orders in ch.orders.values():
            seen.update(o.status for o in orders)
    assert {"open", "filled", "canceled"} <= seen
    assert fills > 10


def test_fill_realizes_pnl_and_flips() -> None:
    eth = MARKETS_BY_ID[0]
    acct = Account(1, "0x" + "1" * 40, 4, "0x", "0x", Decimal("1000"), 0)
    apply_fill(acct, eth, False, Decimal("1.0000"), Decimal("100.00"))
    realized = apply_fill(acct, eth, True, Decimal("1.5000"), Decimal("110.00"))
    pos = acct.positions[0]
    assert realized == Decimal("10")
    assert acct.collateral == Decimal("1010")
    assert pos.size == Decimal("-0.5") and pos.avg_entry == Decimal("110.00")


def test_fmt_never_negative_zero() -> None:
    assert fmt(Decimal("-0.0000001"), 6) == "0.000000"
    assert fmt(Decimal("1.5"), 2) == "1.50"


@pytest.mark.parametrize("token,want", [
    (None, errors.AUTH_EMPTY),
    ("garbage", errors.AUTH_BAD_STRING),
    (f"{1000 + 600}:5:4:{SIG}", None),
    (f"{1000 - 1}:5:4:{SIG}", errors.AUTH_BAD_DEADLINE),
    (f"{1000 + 8 * 3600 + 1}:5:4:{SIG}", errors.AUTH_BAD_DEADLINE),
    (f"{1000 + 600}:6:4:{SIG}", errors.AUTH_WRONG_ACCOUNT),
    (f"{1000 + 600}:5:9:{SIG}", errors.AUTH_BAD_DEADLINE),
    (f"{1000 + 600}:5:4:{SIG[:-2]}", errors.AUTH_BAD_STRING),
    (f"ro:5:single:{1000 + 86400 * 30}:abcdef", None),
])
def test_token_checks(token: str | None, want: dict | None) -> None:
    assert auth.check_token(token, 5, 4, 1000.0) == want


def test_standard_window_counts_requests_and_retry_after() -> None:
    rl = RateLimiter("standard")
    for i in range(60):
        assert rl.acquire("a", 300, 100.0 + i * 0.1) is None
    assert rl.acquire("a", 300, 110.0) == 50  # first slot frees at 160.0
    assert rl.acquire("b", 300, 110.0) is None  # other egress unaffected
    assert rl.acquire("a", 300, 160.01) is None


def test_shortened_window_keeps_the_allowance_per_window() -> None:
    rl = RateLimiter("standard", window_s=4.0)
    for i in range(60):
        assert rl.acquire("a", 300, 100.0 + i * 0.01) is None
    assert rl.acquire("a", 300, 101.0) == 3  # the first slot frees at 104.0, not 160.0
    assert rl.acquire("a", 300, 104.01) is None
    premium = RateLimiter("premium", window_s=2.0)
    assert all(premium.acquire("a", 24_000, t) is None for t in (0.0, 2.5))
    assert premium.acquire("a", 300, 3.0) == 2
    with pytest.raises(ValueError):
        RateLimiter("standard", window_s=0)


def test_rate_window_flag() -> None:
    assert parse_args([]).rate_window_s == 60.0
    assert parse_args(["--rate-window-s", "5", "--tier", "premium"]) == SimConfig(tier="premium", rate_window_s=5.0)
    with pytest.raises(SystemExit):
        parse_args(["--rate-window-s", "0.5"])


def test_premium_is_weighted() -> None:
    rl = RateLimiter("premium")
    for _ in range(80):
        assert rl.acquire("a", 300, 0.0) is None
    assert rl.acquire("a", 300, 1.0) == 59
    assert rl.weight_used(1.0) == {"a": 24_000}


def test_faults_scope_and_expiry() -> None:
    reg = FaultRegistry()
    f = reg.add("http_5xx", {"rest": ["/api/v1/account"]}, 2.0, {}, 0.0)
    assert reg.rest("/api/v1/account", 1.0) == [f]
    assert reg.rest("/api/v1/orderBooks", 1.0) == []
    assert reg.rest("/api/v1/account", 2.5) == [] and f.ended.is_set()
    g = reg.add("ws_silence", None, None, {}, 0.0)
    assert g.ws == "*" and g.rest == []
    assert reg.ws("ws_silence", {"order_book/0"}, 10.0) == [g]
    with pytest.raises(ValueError):
        reg.add("nope", None, None, {}, 0.0)


def test_lenient_and_drift_shapes() -> None:
    m = Model(1, 1, NOW_MS)
    body = views.accounts_response(list(m.accounts.values()), m)
    shapes.lenient(body)
    acct = body["accounts"][0]
    assert "next_cursor" not in body and acct["can_rfq_market_ids"] is None and "pool_info" not in acct
    assert all("margin_set_flag" not in p for p in acct["positions"])
    drifted = shapes.drift({"a": [{"b": 1}]})
    assert drifted["a"][0]["sim_drift_version"] == 2 and "sim_drift_note" in drifted
