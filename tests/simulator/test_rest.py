"""REST against a real simulator process: strict SDK validation, errors, auth, leniency, truth."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
from lighter.models import DetailedAccounts, OrderBooks, Orders, Status

from tests.simulator.helpers import get_json, http_get, sdk_token


@pytest.fixture
def paused(simulator):
    simulator.control.pause()
    return simulator


def test_success_bodies_pass_strict_validation(simulator) -> None:
    base = simulator.base_url
    for acct in simulator.control.accounts():
        idx = acct["account_index"]
        status, body = get_json(base, f"/api/v1/account?by=index&value={idx}")
        assert status == 200 and DetailedAccounts.model_validate(body).accounts[0].index == idx
        status, body = get_json(base, f"/api/v1/account?by=l1_address&value={acct['l1_address']}")
        assert status == 200 and DetailedAccounts.model_validate(body).total == 1
        token = sdk_token(acct)
        status, body = get_json(base, f"/api/v1/accountActiveOrders?account_index={idx}",
                                headers={"Authorization": token})
        assert status == 200 and Orders.model_validate(body).code == 200
        status, body = get_json(base, f"/api/v1/accountActiveOrders?account_index={idx}&market_id=0&auth={token}")
        assert status == 200 and all(o["market_index"] == 0 for o in Orders.model_validate(body).to_dict()["orders"])
    status, body = get_json(base, "/api/v1/orderBooks")
    assert status == 200 and len(OrderBooks.model_validate(body).order_books) >= 3
    status, body = get_json(base, "/")
    assert status == 200 and Status.model_validate(body).status == 200


def test_error_bodies(simulator) -> None:
    base = simulator.base_url
    acct = simulator.control.accounts()[0]
    idx = acct["account_index"]
    orders = f"/api/v1/accountActiveOrders?account_index={idx}"
    cases = [
        ("/api/v1/account?by=index&value=1", {}, 400, 21100),
        ("/api/v1/account?by=l1_address&value=0x" + "9" * 40, {}, 400, 21100),
        ("/api/v1/account?by=name&value=x", {}, 400, 20001),
        ("/api/v1/account?by=index&value=abc", {}, 400, 20001),
        ("/api/v1/accountActiveOrders?account_index=xyz", {}, 400, 20001),
        (orders, {}, 400, 20001),
        (orders, {"Authorization": "Bearer nope"}, 401, 20013),
        (orders, {"Authorization": sdk_token(acct, expires_in_s=-5)}, 401, 20013),
        (orders, {"Authorization": sdk_token(acct, expires_in_s=8 * 3600 + 120)}, 401, 20013),
        (orders, {"Authorization": sdk_token(acct, account_index=idx + 1)}, 401, 20013),
        (orders, {"Authorization": sdk_token(acct, api_key_index=acct["api_key_index"] + 1)}, 401, 20013),
        ("/api/v1/nothingHere", {}, 404, 29404),
    ]
    for path, headers, want_status, want_code in cases:
        status, hdrs, raw = http_get(base, path, headers=headers)
        assert (status, hdrs["X-Lighter-Simulator"]) == (want_status, "1"), path
        assert json.loads(raw)["code"] == want_code, (path, raw)
    _, missing = get_json(base, orders)
    assert missing["message"] == "invalid param : auth query param and Authorization header are empty"


def test_rest_agrees_with_truth_while_paused(paused) -> None:
    ctl, base = paused.control, paused.base_url
    acct = ctl.accounts()[1]
    idx = acct["account_index"]
    truth = ctl.state(idx)
    _, body = get_json(base, f"/api/v1/account?by=index&value={idx}")
    assert body["accounts"][0] == truth["account"]
    _, orders = get_json(base, f"/api/v1/accountActiveOrders?account_index={idx}",
                         headers={"Authorization": sdk_token(acct)})
    assert orders["orders"] == truth["orders"]
    ctl.step()
    assert ctl.state(idx)["account"] != truth["account"] or ctl.state(idx)["orders"] != truth["orders"]


def test_trade_moves_position_and_collateral(paused) -> None:
    ctl = paused.control
    idx = ctl.accounts()[0]["account_index"]
    before = {p["market_id"]: p for p in ctl.state(idx)["account"]["positions"]}
    after = ctl.trade(idx, 1, "0.01000", is_ask=False)["account"]
    pos = {p["market_id"]: p for p in after["positions"]}[1]
    assert _signed(pos) == _signed(before.get(1)) + Decimal("0.01")


def _signed(pos: dict | None) -> Decimal:
    return Decimal(pos["position"]) * pos["sign"] if pos else Decimal(0)


def test_lenient_flag_serves_live_like_shapes(simulator_factory) -> None:
    sim = simulator_factory(lenient=True)
    idx = sim.control.accounts()[0]["account_index"]
    _, body = get_json(sim.base_url, f"/api/v1/account?by=index&value={idx}")
    acct = body["accounts"][0]
    assert acct["can_rfq_market_ids"] is None and "pool_info" not in acct and "next_cursor" not in body
    with pytest.raises(ValueError):
        DetailedAccounts.model_validate(body)
