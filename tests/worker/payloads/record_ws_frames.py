"""Re-record the ws_*.json frames test_dispatch.py replays: `python tests/worker/payloads/record_ws_frames.py`.

The frames are the simulator's own (simulator/wsframes.py, the builders its /stream sends), for a seeded model:
the subscribe snapshots of one account, then the updates of the first market step that fills one of its orders
and cancels another that the snapshot listed (a terminal status, which removes the order).
"""
from __future__ import annotations

import sys
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from simulator import wsframes  # noqa: E402 - after the path is set
from simulator.model import Model  # noqa: E402

NOW_MS = 1_800_000_000_000
SEED, ACCOUNTS = 1, 3


def _interesting(model: Model, index: int, step_ms: int) -> int:
    """How many 100 ms steps until one fills an order of `index` and ends another the snapshot listed."""
    probe = Model(SEED, ACCOUNTS, NOW_MS)
    for step in range(1, 2000):
        listed = {o.order_index for o in probe.accounts[index].active_orders()}
        changes = probe.tick(NOW_MS + step * step_ms)
        ended = [o for o in changes.orders.get(index, []) if o.status != "open" and o.order_index in listed]
        if changes.fills.get(index) and ended:
            return step
    raise RuntimeError("no step fills and ends an order")


def main() -> None:
    model = Model(SEED, ACCOUNTS, NOW_MS)
    index = sorted(model.accounts)[0]
    step = _interesting(model, index, 100)
    for n in range(1, step):
        model.tick(NOW_MS + n * 100)
    at = NOW_MS + (step - 1) * 100
    frames = {
        "ws_account_all_subscribed": wsframes.snapshot(model, f"account_all/{index}", at),
        "ws_user_stats_subscribed": wsframes.snapshot(model, f"user_stats/{index}", at),
        "ws_account_all_orders_subscribed": wsframes.snapshot(model, f"account_all_orders/{index}", at),
        "ws_account_all_trades_subscribed": wsframes.snapshot(model, f"account_all_trades/{index}", at),
    }
    at += 100
    changes = model.tick(at)
    frames["ws_account_all_update"] = wsframes.account_all(model, index, "update", changes.fills[index], at)
    frames["ws_user_stats_update"] = wsframes.user_stats_frame(model, index, "update", at)
    frames["ws_account_all_orders_update"] = wsframes.account_all_orders(index, changes.orders[index], "update", at)
    frames["ws_account_all_trades_update"] = wsframes.account_all_trades(model, index, "update",
                                                                         changes.fills[index], at)
    for name, frame in frames.items():
        (HERE / f"{name}.json").write_bytes(orjson.dumps(frame, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote {name}.json")


if __name__ == "__main__":
    main()
