"""Inventory (`sim.rules.inventory`, `sim.rules.orders`): the rule as documented, and parity —
the same script of holds, payments, confirms and expiries through the simulator's inventory
service (`ToolService` + `OrderWork`, SimPy time) and the stack's SQLite store (`StockStore`,
explicit clock) gives the same answers, the same items and the same stock."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from loadtest.stack.inventory import StockStore
from loadtest.stack.orders import OrderStore
from sim.des.orders import OrderWork
from sim.des.services import ToolService
from sim.rules.inventory import (
    CONFIRMED,
    CONFLICT,
    EXPIRED,
    GRANTED,
    SOLD_OUT,
    Stock,
    decide_hold,
    hold_batch,
    pick_item,
)
from sim.rules.orders import OrderState, at_end, charge
from sim.scenario.services import HotItems, Inventory, Service

# Script steps: ("hold", order, stage, quantity, u, t), ("pay", order, t), ("confirm", order, t),
# ("state", t). `u` is the item draw; t seconds.
SCRIPTS: list[tuple[dict[str, Any], list[tuple[Any, ...]]]] = [
    ({"items": 3, "stock": 2, "hold_s": 10, "fallback": False}, [  # no fallback: conflict, then sold out
        ("hold", "a", 0, 2, 0.1, 0.0), ("hold", "b", 0, 1, 0.1, 1.0), ("pay", "a", 2.0), ("confirm", "a", 3.0),
        ("hold", "b", 0, 1, 0.1, 4.0), ("hold", "c", 0, 1, 0.5, 5.0), ("state", 5.0)]),
    ({"items": 3, "stock": 2, "hold_s": 10}, [  # fallback: the next best item, then conflict while held
        ("hold", "a", 0, 2, 0.0, 0.0), ("hold", "b", 0, 2, 0.0, 1.0), ("hold", "c", 0, 2, 0.0, 2.0),
        ("hold", "d", 0, 2, 0.9, 3.0), ("state", 3.0)]),
    ({"items": 2, "stock": 1, "hold_s": 5}, [  # holds lapse: units come back, a late confirm is refused
        ("hold", "a", 0, 1, 0.0, 0.0), ("hold", "b", 0, 1, 0.0, 1.0), ("hold", "c", 0, 1, 0.0, 2.0),
        ("state", 4.0), ("confirm", "a", 5.0), ("hold", "c", 0, 1, 0.0, 5.5), ("confirm", "c", 6.0),
        ("confirm", "c", 7.0), ("state", 20.0)]),
    ({"items": 1, "stock": 2, "hold_s": 5}, [  # a retry reuses its live hold; after a lapse it takes a new one
        ("hold", "a", 0, 1, 0.3, 0.0), ("hold", "a", 0, 1, 0.3, 1.0), ("hold", "b", 0, 1, 0.3, 1.5),
        ("hold", "c", 0, 1, 0.3, 2.0), ("pay", "a", 3.0), ("hold", "a", 0, 1, 0.3, 5.0), ("state", 5.0),
        ("confirm", "a", 6.0), ("confirm", "b", 7.0), ("state", 7.0)]),
    ({"items": 1, "stock": 1, "hold_s": 2}, [  # paid, lapsed, sold to another: refunded, once
        ("hold", "a", 0, 1, 0.0, 0.0), ("pay", "a", 1.0), ("hold", "b", 0, 1, 0.0, 2.5), ("confirm", "b", 3.0),
        ("confirm", "a", 3.5), ("hold", "a", 0, 1, 0.0, 4.0), ("hold", "a", 0, 1, 0.0, 5.0), ("state", 5.0)]),
    ({"items": 10, "stock": 3, "hold_s": 30, "hot": {"items": 2, "share": 0.8}}, [  # hot items first
        *[("hold", f"o{k}", 0, 2, u, float(k)) for k, u in enumerate([0.1, 0.5, 0.7, 0.79, 0.85, 0.99, 0.2])],
        ("state", 8.0)]),
    ({"items": 2, "stock": 4, "hold_s": 9}, [  # two holds of one order on one service (a basket), one lapses
        ("hold", "a", 0, 1, 0.0, 0.0), ("hold", "a", 3, 2, 0.9, 5.0), ("confirm", "a", 10.0),
        ("hold", "a", 0, 1, 0.0, 11.0), ("confirm", "a", 12.0), ("state", 12.0)]),
]


def _spec(d: dict[str, Any]) -> Inventory:
    return Inventory.model_validate(d)


def run_des(spec: Inventory, script: list[tuple[Any, ...]]) -> list[Any]:
    """The script through the simulator's inventory service: each step runs at its time in SimPy."""
    env = simpy.Environment()
    svc = ToolService(env, "seats", Service(inventory=spec), np.random.default_rng(0))
    def paid(cmd: Any) -> None:  # what the simulator's client does with a payment: the order is paid
        cmd.order.paid = True

    work = OrderWork(env, None, {}, paid)
    cmds: dict[str, Any] = {}
    log: list[Any] = []
    for step in script:
        t = step[-1]
        env.run(until=t) if t > env.now else None
        if step[0] == "state":
            svc.stock.expire(env.now)  # type: ignore[union-attr]
            st = svc.stock
            log.append(("state", [st.free(i) for i in range(spec.items)], list(st.held), list(st.sold)))  # type: ignore[union-attr]
            continue
        cmd = cmds.setdefault(step[1], types.SimpleNamespace(order=OrderState()))
        order = cmd.order
        if step[0] == "hold":
            _, _, stage, q, u, _ = step
            svc.draws = lambda u=u: u  # type: ignore[assignment]
            out = work.work(("hold", stage, lambda q=q: q), svc, cmd)()
            h = order.holds.get(("seats", stage))
            log.append(("hold", step[1], out if out != "ok" else GRANTED, h.item if out == "ok" and h else None,
                        order.refunded))
        elif step[0] == "pay":
            work.work(("pay",), svc, cmd)()
        else:
            out = work.work(("confirm",), svc, cmd)()
            log.append(("confirm", step[1], CONFIRMED if out == "ok" else EXPIRED))
    return log


async def run_stack(spec: Inventory, script: list[tuple[Any, ...]], db: Path) -> list[Any]:
    """The script through the stack's SQLite store, with the script's times as its clock."""
    store = OrderStore(str(db))
    stock = StockStore(store, "seats", spec)
    await store.open()
    ids: dict[str, str] = {}
    log: list[Any] = []
    try:
        for step in script:
            t = step[-1]
            if step[0] == "state":
                await stock.expire(t)
                rows = await store.transaction(lambda d: [dict(r) for r in d.execute(
                    "SELECT * FROM stock WHERE service='seats' ORDER BY item")])
                log.append(("state", [r["stock"] - r["held"] - r["sold"] for r in rows], [r["held"] for r in rows],
                            [r["sold"] for r in rows]))
                continue
            if step[1] not in ids:
                _, row = await store.claim("user", step[1], "h", 60)
                ids[step[1]] = row["id"]
            oid = ids[step[1]]
            if step[0] == "hold":
                _, _, stage, q, u, _ = step
                res = await stock.hold(oid, stage, q, u, now=t)
                log.append(("hold", step[1], res.outcome, res.item if res.outcome == GRANTED else None, res.refunded
                            or (await store.get(oid) or {}).get("status") == "refunded"))
            elif step[0] == "pay":
                await store.pay(oid)
            else:
                log.append(("confirm", step[1], await stock.confirm(oid, now=t)))
    finally:
        await store.close()
    return log


@pytest.mark.parametrize(("settings", "script"), SCRIPTS)
def test_simulator_and_stack_hold_alike(settings: dict[str, Any], script: list[tuple[Any, ...]],
                                        tmp_path: Path) -> None:
    spec = _spec(settings)
    des = run_des(spec, script)
    stack = asyncio.run(run_stack(spec, script, tmp_path / "orders.db"))
    assert des == stack
    assert any(e[0] == "hold" and e[2] == GRANTED for e in des)  # the script did something


def test_scripts_reach_every_answer() -> None:
    """Across the scripts, every outcome of the rule happens (so the parity above covers them)."""
    seen = {e[2] for _, script in SCRIPTS for e in run_des(_spec(_), script) if e[0] in ("hold", "confirm")}
    refunded = any(e[0] == "hold" and e[4] for _, script in SCRIPTS for e in run_des(_spec(_), script))
    assert {GRANTED, CONFLICT, SOLD_OUT, CONFIRMED, EXPIRED} <= seen and refunded


def test_the_rule_as_documented() -> None:
    assert decide_hold(0, 2, 2, 2, None, False, False) == (GRANTED, 0)
    assert decide_hold(0, 2, 1, 2, None, False, False) == (CONFLICT, None)  # units held by others may return
    assert decide_hold(0, 2, 1, 1, None, True, False) == (SOLD_OUT, None)  # without fallback only the item counts
    assert decide_hold(0, 2, 0, 0, 4, True, True) == (GRANTED, 4)  # fallback: the most preferred free item
    assert decide_hold(0, 2, 0, 0, None, True, True) == (CONFLICT, None)
    assert decide_hold(0, 2, 0, 0, None, False, True) == (SOLD_OUT, None)
    hot = Inventory(items=10, stock=1, hold_s=1, hot=HotItems(items=2, share=0.5))
    assert [pick_item(hot, u) for u in (0.0, 0.24, 0.26, 0.49, 0.5, 0.99)] == [0, 0, 1, 1, 2, 9]
    st = Stock(Inventory(items=1, stock=3, hold_s=10))
    out, h = st.hold(0, 2, 0.0)
    assert out == GRANTED and h is not None and (st.free(0), st.held_units) == (1, 2)
    assert st.confirm(h, 10.0) == EXPIRED and st.free(0) == 3  # lapsed exactly at its expiry
    out, h = st.hold(0, 3, 11.0)
    assert h is not None and st.confirm(h, 12.0) == CONFIRMED and st.confirm(h, 13.0) == CONFIRMED
    assert (st.sold_units, st.held_units, st.free_units) == (3, 0, 0)  # confirmed twice, sold once
    assert st.hold(0, 1, 14.0) == (SOLD_OUT, None)


def test_money_at_the_end_of_a_command() -> None:
    assert charge(0) == "charged" and charge(1) == "duplicate_prevented" and charge(1, False) == "charged_again"
    o = OrderState()
    assert at_end(o, False) is None  # nothing paid, nothing owed
    o.paid = True
    assert at_end(o, False) == "failed_after_payment" and at_end(o, True) is None
    assert o.refund_due(SOLD_OUT) and not o.refund_due(SOLD_OUT)  # refunded once
    assert at_end(o, False) is None  # refunded: nothing owed
    o.wrong_item = True
    assert at_end(o, True) == "wrong_item" and at_end(None, False) is None


@pytest.mark.parametrize("fallback", [False, True])
def test_batch_form_matches_one_hold_at_a_time(fallback: bool) -> None:
    """The fleet engine's batch form gives the per-request rule's totals (and, without fallback,
    its per-item grants) for holds decided at one instant, in any order."""
    rng = np.random.default_rng(5)
    spec = Inventory(items=8, stock=5, hold_s=100, fallback=fallback, hot=HotItems(items=2, share=0.7))
    for trial in range(40):
        st = Stock(spec)
        for i in range(spec.items):  # some units already held or sold
            st.sold[i] = int(rng.integers(0, 4))
            st.held[i] = int(rng.integers(0, spec.stock - st.sold[i] + 1))
        free = np.array([st.free(i) for i in range(spec.items)])
        unsold = np.array([st.unsold(i) for i in range(spec.items)])
        q = int(rng.integers(1, 3))
        wanted = [pick_item(spec, float(u)) for u in rng.random(int(rng.integers(1, 30)))]
        outcomes = [st.hold(w, q, 1.0) for w in wanted]
        granted, conflicts, sold_out = hold_batch(free, unsold, np.bincount(wanted, minlength=spec.items), q, fallback)
        assert int(granted.sum()) == sum(o == GRANTED for o, _ in outcomes), trial
        assert conflicts == sum(o == CONFLICT for o, _ in outcomes) and sold_out == sum(o == SOLD_OUT for o, _ in outcomes)
        if not fallback:
            per_item = np.bincount([h.item for _, h in outcomes if h is not None], minlength=spec.items)
            assert (granted == per_item).all()
