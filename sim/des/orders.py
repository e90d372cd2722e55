"""The work the tool stages of an order-placing command do in the simulator: holds and confirms
on inventory services (`sim.rules.inventory`), payments and wrong items (`sim.rules.orders`).
Each piece of work runs inside its tool call, at the end of the service time
(`ToolService.call(..., work=)`), so an error after the work loses only the answer, as in the
reference stack. A payment is reported to the client (`pay`, the stack's `on_payment` hook),
which counts it; refunds are counted here, where they happen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy

from sim.des.services import OK, ToolService
from sim.dists import sampler
from sim.results import Recorder
from sim.results import names as N
from sim.rules.inventory import EXPIRED, Stock, pick_item
from sim.rules.orders import HOLD_WORK, OrderState, after_refund, settles_at_end, stage_work
from sim.rules.outcomes import CONFLICT
from sim.scenario import CommandClass
from sim.streams import Streams

Op = tuple[Any, ...]  # ("hold", stage index, quantity draw) | ("confirm",) | ("pay",) | ("item",)


class OrderWork:
    """What order-placing stages do, for one simulated stack; counts into `rec` when given."""

    def __init__(self, env: simpy.Environment, rec: Recorder | None, classes: dict[str, CommandClass],
                 pay: Callable[[Any], None]) -> None:
        self.env, self.rec, self.pay = env, rec, pay
        self._refunds = rec.series(N.REFUNDS) if rec is not None and any(
            c.places_order for c in classes.values()) else None
        self._stocks: dict[str, Stock] = {}  # by service: every stock an order's holds are on

    def _refunded(self) -> None:
        if self._refunds is not None:
            self._refunds[self.rec.index(self.env.now)] += 1  # type: ignore[union-attr]

    # -- plan time --------------------------------------------------------------------------
    def plan(self, cls: CommandClass, tool: str, stage_index: int, streams: Streams, key: str) -> Op | None:
        """The work of one tool stage of `cls` (None: the call's time and errors only)."""
        what = stage_work(cls, stage_index)
        if what is None:
            return None
        if what == HOLD_WORK:
            st = cls.stages[stage_index].tool
            assert st is not None
            return ("hold", stage_index, sampler(st.quantity, streams(key + ".quantity")) if st.quantity
                    else (lambda: 1.0))
        return (what,)

    @staticmethod
    def settles(cls: CommandClass) -> bool:
        """`sim.rules.orders.settles_at_end`."""
        return settles_at_end(cls)

    # -- run time ---------------------------------------------------------------------------
    def work(self, op: Op, svc: ToolService, cmd: Any) -> Callable[[], str]:
        """The work of stage op `op` for command `cmd` (its order: `cmd.order`), run by `svc`."""
        kind, order = op[0], cmd.order
        if kind == "hold":
            return lambda: self._hold(svc, order, op[1], op[2])
        if kind == "confirm":
            return lambda: self._confirm(svc, order)
        if kind == "pay":
            return lambda: self._pay(cmd)
        return lambda: self._item(svc, order)

    def _pay(self, cmd: Any) -> str:
        self.pay(cmd)
        return OK

    def _mistake(self, svc: ToolService) -> bool:
        p = svc.effect.wrong_item
        return p > 0 and svc.draws() < p

    def _item(self, svc: ToolService, order: OrderState) -> str:
        if self._mistake(svc):
            order.wrong_item = True
        return OK

    def _hold(self, svc: ToolService, order: OrderState, stage: int, quantity: Callable[[], float]) -> str:
        now, stock = self.env.now, svc.stock
        assert stock is not None
        self._stocks[svc.name] = stock
        refused = after_refund(order.refunded)
        if refused is not None:
            return refused
        key = (svc.name, stage)
        h = order.holds.get(key)
        if stock.live(h, now):
            return OK  # a retry keeps the order's hold
        q = h.quantity if h is not None else max(1, round(quantity()))
        wanted = pick_item(stock.spec, svc.draws())
        if self._mistake(svc):
            wanted = (wanted + 1) % stock.spec.items
            order.wrong_item = True
        outcome, new = stock.hold(wanted, q, now)
        if new is not None:
            order.holds[key] = new
            return OK
        if order.refund_due(outcome):
            self._refunded()
            self._release(order, now)
        return outcome

    def _release(self, order: OrderState, now: float) -> None:
        """A refund gives back every hold of the order, on every inventory (`sim.rules.inventory.release`)."""
        for (name, _), h in order.holds.items():
            st = self._stocks[name]
            st.expire(now)
            st.release(h, now)

    def _confirm(self, svc: ToolService, order: OrderState) -> str:
        now, stock = self.env.now, svc.stock
        assert stock is not None
        outcome = OK
        for (name, _), h in order.holds.items():
            if name == svc.name and stock.confirm(h, now) == EXPIRED:
                outcome = CONFLICT  # the hold lapsed: a retry takes a new one
        return outcome
