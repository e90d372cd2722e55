"""A refund gives back the whole order (`sim.rules.orders`, `sim.rules.inventory.release`):
parity between the simulator's inventory services (`ToolService` + `OrderWork`) and the stack's
SQLite stores (`StockStore`) on an order with holds on two inventories — a travel order whose
flight seats are confirmed and whose hotel room is lost — and the rule itself.

Regression (issue 16): a refunded travel order kept the flight seats it had confirmed."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from loadtest.stack.inventory import StockStore
from loadtest.stack.orders import OrderStore
from sim.des.orders import OrderWork
from sim.des.services import ToolService
from sim.rules.inventory import HELD, LAPSED, RELEASED, SOLD, SOLD_OUT, Stock, release
from sim.rules.orders import OrderState, after_refund
from sim.scenario.services import Inventory, Service

SPECS = {"flights": Inventory(items=1, stock=3, hold_s=100), "hotels": Inventory(items=1, stock=1, hold_s=2)}
# (what, order, service, stage, quantity, t): order a holds 2 seats and the room, pays, its seats
# are ticketed, its room lapses and b books it; a's retry finds no room: refunded, its seats
# come back (and only once: a's later hold answers sold out and changes nothing).
SCRIPT: list[tuple[Any, ...]] = [
    ("hold", "a", "flights", 3, 2, 0.0), ("hold", "a", "hotels", 6, 1, 0.5), ("pay", "a", "", 0, 0, 1.0),
    ("confirm", "a", "flights", 0, 0, 1.5), ("hold", "b", "hotels", 6, 1, 3.0), ("confirm", "b", "hotels", 0, 0, 3.5),
    ("hold", "a", "hotels", 6, 1, 4.0), ("state", "", "", 0, 0, 4.0), ("hold", "a", "flights", 3, 2, 5.0),
    ("hold", "c", "flights", 3, 3, 6.0), ("state", "", "", 0, 0, 6.0)]


def run_des(script: list[tuple[Any, ...]]) -> list[Any]:
    env = simpy.Environment()
    svcs = {n: ToolService(env, n, Service(inventory=s), np.random.default_rng(0)) for n, s in SPECS.items()}
    for s in svcs.values():
        s.draws = lambda: 0.0  # type: ignore[assignment]

    def paid(cmd: Any) -> None:
        cmd.order.paid = True

    work = OrderWork(env, None, {}, paid)
    cmds: dict[str, Any] = {}
    log: list[Any] = []
    for what, o, svc, stage, q, t in script:
        env.run(until=t) if t > env.now else None
        if what == "state":
            log.append(("state", *[_units(s.stock, env.now) for s in svcs.values()]))  # type: ignore[arg-type]
            continue
        cmd = cmds.setdefault(o, types.SimpleNamespace(order=OrderState()))
        if what == "hold":
            out = work.work(("hold", stage, lambda q=q: q), svcs[svc], cmd)()
            log.append(("hold", o, svc, "granted" if out == "ok" else out, cmd.order.refunded))
        elif what == "pay":
            work.work(("pay",), svcs["flights"], cmd)()
        else:
            log.append(("confirm", o, svc, work.work(("confirm",), svcs[svc], cmd)()))
    return log


def _units(st: Stock, now: float) -> tuple[int, int, int]:
    st.expire(now)
    return st.free_units, st.held_units, st.sold_units


async def run_stack(script: list[tuple[Any, ...]], db: Path) -> list[Any]:
    store = OrderStore(str(db))
    stocks = {n: StockStore(store, n, s) for n, s in SPECS.items()}
    await store.open()
    ids: dict[str, str] = {}
    log: list[Any] = []
    try:
        for what, o, svc, stage, q, t in script:
            if what == "state":
                log.append(("state", *[await _stack_units(s, t) for s in stocks.values()]))
                continue
            if o not in ids:
                _, row = await store.claim("user", o, "h", 60)
                ids[o] = row["id"]
            if what == "hold":
                res = await stocks[svc].hold(ids[o], stage, q, 0.0, now=t)
                status = (await store.get(ids[o]) or {}).get("status")
                log.append(("hold", o, svc, res.outcome, status == "refunded"))
            elif what == "pay":
                await store.pay(ids[o])
            else:
                out = await stocks[svc].confirm(ids[o], now=t)
                log.append(("confirm", o, svc, "ok" if out == "confirmed" else "conflict"))
    finally:
        await store.close()
    return log


async def _stack_units(s: StockStore, t: float) -> tuple[int, int, int]:
    st = await s.state(now=t)
    return st["free"], st["held"], st["sold"]


def test_a_refund_releases_the_whole_order_alike_in_simulator_and_stack(tmp_path: Path) -> None:
    des = run_des(SCRIPT)
    stack = asyncio.run(run_stack(SCRIPT, tmp_path / "orders.db"))
    assert des == stack
    # the refund: a's hotel hold sold out, a refunded, its 2 ticketed seats free again (3 free)
    assert ("hold", "a", "hotels", SOLD_OUT, True) in des
    assert des[6] == ("state", (3, 0, 0), (0, 0, 1))
    # a refunded order holds nothing more; c then gets every seat
    assert des[7] == ("hold", "a", "flights", SOLD_OUT, True)
    assert des[9] == ("state", (0, 3, 0), (0, 0, 1))


def test_release_rule() -> None:
    assert release(HELD, 2, 10.0, 5.0) == (RELEASED, 2, 0)
    assert release(HELD, 2, 10.0, 10.0) == (LAPSED, 2, 0)  # past its expiry: it lapsed
    assert release(SOLD, 3, 10.0, 50.0) == (RELEASED, 0, 3)
    assert release(RELEASED, 3, 10.0, 50.0) == (RELEASED, 0, 0)  # once
    assert release(LAPSED, 3, 10.0, 50.0) == (LAPSED, 0, 0)
    assert after_refund(True) == SOLD_OUT and after_refund(False) is None
