"""Orders in the fleet engine: what each order-placing command's order has been through, as
counts, and the work its tool stages do (`sim.rules.orders`, `sim.rules.inventory`).

An order's state is a tag (sim/fleet/ordertags.py: hold, paid, wrong item) carried with its
attempts; the inventory work of hold and confirm stages is sim/fleet/holdwork.py.

The pipeline only knows rows. The book keeps, per *position* (the gateway queue, then each
stage), the attempts there by attempt number, order state and row (R, K, O, NR); when a stage's
owner reports calls done, failed or shed in a row, they are taken from that position in
proportion (attempts of one row at one stage are alike: systematic split, `split_comp`), the
stage's work changes their state (a hold taken or reused, a conflict, a sale, a charge, a
mistake), and they move on to the next position or out as an outcome. At the outcome the
engine takes their session states in proportion within each attempt number; retries keep
(session state, order state) together in their calendar (`couple`).

Errors after a service: half strike after the work (`sim.rules.faults.error_timing`): those
calls do the work (a payment taken, a hold granted) and then fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.client import split_comp
from sim.fleet.holdwork import confirm, hold, hold_quantity
from sim.fleet.inventory import FleetStock
from sim.fleet.ordertags import HELD0, NONE, Tags, couple
from sim.fleet.record import BatchRecorder
from sim.fleet.split import binomial, systematic
from sim.results import names as N
from sim.rules.orders import (
    CONFIRM_WORK,
    HOLD_WORK,
    ITEM_WORK,
    PAY_WORK,
    after_failure_counts,
    charge_counts,
    settles_at_end,
    stage_work,
)
from sim.rules.outcomes import ERROR, OK, SHED
from sim.scenario import CommandClass

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim
    from sim.fleet.timestep import Regrid

_HALVES = np.array([0.5, 0.5])


class OrderBook:
    """The orders of one order-placing class (see the module docstring)."""

    def __init__(self, sim: FleetSim, name: str, cls: CommandClass, stocks: dict[str, FleetStock],
                 rng: np.random.Generator) -> None:
        self.sim, self.name, self.rng = sim, name, rng
        self.work = [stage_work(cls, j) for j in range(len(cls.stages))]
        holds = [st.tool.service for st, w in zip(cls.stages, self.work, strict=True)
                 if w == HOLD_WORK and st.tool is not None]
        self.stock = stocks[holds[0]] if holds else None
        wrong = any(f.kind == "wrong_item" for f in sim.sc.faults)
        self.tags = Tags(HELD0 + self.stock.slots if self.stock else 1, 2, 2 if wrong else 1)
        self.services = [st.tool.service if st.tool else None for st in cls.stages]
        self.settles = settles_at_end(cls)
        # stages after which a paid order stands when they fail (`after_failure_counts`: a count
        # form whose `paid` part succeeds exactly where `paid_survives`)
        self.survives = [cls.places_order and after_failure_counts(1.0, 0.0, cls.stages, j)[0] > 0
                         for j in range(len(cls.stages))]
        R, K, n_o, NR = sim.R, sim.K, self.tags.n, sim.rows.NR
        self.first = 1 if sim.gw is not None else 0  # position 0: the gateway queue
        self.pos = [np.zeros((R, K, n_o, NR)) for _ in range(self.first + len(cls.stages))]
        self.out: dict[str, np.ndarray] = {}
        self.ready = np.zeros((R, K, n_o))  # re-logged-in retries, sent next step
        self.parked = np.zeros((R, K, n_o))  # retries waiting for their re-login
        self.retries_cal = np.zeros((R, K, n_o, 1))  # the class's retry calendar (set by the engine)

    # -- in and out of the pipeline ---------------------------------------------------------------
    def fresh(self, x: np.ndarray) -> np.ndarray:
        """Order states (R, K, O) of first attempts x (R, K, S): a new order each."""
        o = np.zeros(x.shape[:2] + (self.tags.n,))
        o[:, :, 0] = x.sum(axis=2)
        return o

    def take(self, o: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Of the order states o (R, K, O), n (R, K) per attempt number, in proportion."""
        R, K, n_o = o.shape
        return split_comp(o.reshape(R * K, n_o, 1), n.reshape(R * K, 1), self.rng).reshape(R, K, n_o)

    def enter(self, o: np.ndarray, row: int) -> None:
        """Attempts sent in row `row` join the gateway queue (or the first stage)."""
        self.pos[0][:, :, :, row] += o

    def admitted(self, rows: np.ndarray) -> None:
        """The gateway admitted `rows` (R, NR): they start the first stage."""
        if self.first:
            cells = split_comp(self.pos[0], rows, self.rng)
            self.pos[0] -= cells
            self.pos[1] += cells

    def leave_gateway(self, rows: np.ndarray, reason: str) -> None:
        """Queued attempts `rows` (R, NR) left the gateway queue with `reason` (evicted, outage)."""
        if self.first:
            cells = split_comp(self.pos[0], rows, self.rng)
            self.pos[0] -= cells
            self._out(reason, cells)

    def outcome(self, reason: str, A: int) -> np.ndarray:
        """The order states (R, K, O, A) of this step's outcomes `reason` (the ghost row's go)."""
        cells = self.out.pop(reason, None)
        if cells is None:
            return np.zeros(self.pos[0].shape[:3] + (A,))
        return cells[..., :A]

    def timeout_row(self, r0: int, cancel: bool, gateway_drops: bool) -> np.ndarray:
        """Row r0's clients stopped waiting: their order states (R, K, O); the work goes on as
        ghost work unless the servers (or the gateway) drop it."""
        G = self.sim.rows.GHOST
        tot = np.zeros(self.pos[0].shape[:3])
        for k, p in enumerate(self.pos):
            x = p[..., r0].copy()
            tot += x
            p[..., r0] = 0.0
            if not (cancel or (k < self.first and gateway_drops)):
                p[..., G] += x
        return tot

    def _out(self, reason: str, cells: np.ndarray) -> None:
        if reason in self.out:
            self.out[reason] += cells
        else:
            self.out[reason] = cells.copy()

    # -- a stage's calls come back ----------------------------------------------------------------
    def collect(self, j: int, owner: object, fl_out: dict[str, np.ndarray], i: int) -> None:
        """What stage j's owner reports this step, before the engine moves it on: take it from the
        stage's position, do the stage's work, and turn attempts whose work failed (a conflict,
        sold out, a lapsed hold) into outcomes (removed from the owner's `done`)."""
        pos = self.pos[self.first + j]
        served_err = getattr(owner, "served_error", None)
        if not (owner.done.any() or owner.error.any() or owner.shed.any()):  # type: ignore[attr-defined]
            if served_err is not None and served_err.any():
                served_err[:] = 0.0
            return  # most stages, most steps: nothing came back
        done, err, shed, after = self._take(j, pos, owner, served_err)
        stood: list[np.ndarray | None] = []
        paid_before = None
        if self.survives[j]:  # paid orders stand (`after_failure`), as paid before the stage
            stood = [self._stand(err, owner.error, fl_out), self._stand(shed, owner.shed, fl_out)]  # type: ignore[attr-defined]
            if after is not None and self.work[j] == PAY_WORK:  # they are charged (again) first
                paid_before = self._paid(after)
        if self.work[j] is not None and (done.any() or (after is not None and after.any())):
            failed = self._do(j, done, after, i)
            for reason, cells in failed.items():
                rows = cells.sum(axis=(1, 2))
                owner.done -= rows  # type: ignore[attr-defined]
                fl_out[reason] = fl_out.get(reason, 0) + rows
                self._out(reason, cells)
        if self.survives[j]:
            stood.append(self._stand(after, owner.error, fl_out, paid_before))  # type: ignore[attr-defined]
        if after is not None:
            err = err + after if err is not None else after
        if not done.any():
            pass
        elif j + 1 < len(self.work):
            self.pos[self.first + j + 1] += done
        else:
            self._out(OK, done)
        if err is not None:
            self._out(ERROR, err)
        if shed is not None:
            self._out(SHED, shed)
        for c in stood:
            if c is not None:
                self._out(OK, c)

    def _take(self, j: int, pos: np.ndarray, owner: object, served_err: np.ndarray | None) -> tuple[
            np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Stage j's calls done, failed and shed this step, out of its position `pos`, and of the
        failed those whose error struck after the work (half of a service's errors)."""
        done = split_comp(pos, owner.done, self.rng)  # type: ignore[attr-defined]
        pos -= done
        err = split_comp(pos, owner.error, self.rng) if owner.error.any() else None  # type: ignore[attr-defined]
        if err is not None:
            pos -= err
        shed = split_comp(pos, owner.shed, self.rng) if owner.shed.any() else None  # type: ignore[attr-defined]
        if shed is not None:
            pos -= shed
        after = None
        if served_err is not None:
            if err is not None and served_err.any() and self.work[j] is not None:
                half = systematic(served_err, _HALVES, self.rng)[..., 1]
                after = split_comp(err, half, self.rng)
                err -= after
            served_err[:] = 0.0
        return done, err, shed, after

    def _paid(self, cells: np.ndarray) -> np.ndarray:
        """The part of `cells` whose orders are paid (a copy)."""
        paid = np.zeros_like(cells)
        self.tags.split(paid, 2)[:, :, :, 1] = self.tags.split(cells, 2)[:, :, :, 1]
        return paid

    def _stand(self, cells: np.ndarray | None, owner_rows: np.ndarray, fl_out: dict[str, np.ndarray],
               paid: np.ndarray | None = None) -> np.ndarray | None:
        """Of the failed calls `cells` (changed in place), those whose order was paid before the
        stage (`paid`: them, when the stage's work changed `cells` since): they succeed
        (`sim.rules.orders.after_failure_counts`), out of the owner's rows `owner_rows` (error or
        shed) into the flow's OK."""
        if cells is None:
            return None
        if paid is None:
            paid = self._paid(cells)
        if not paid.any():
            return None
        cells -= paid
        rows = paid.sum(axis=(1, 2))
        owner_rows -= rows
        fl_out[OK] = fl_out.get(OK, 0) + rows
        return paid

    def _do(self, j: int, done: np.ndarray, after: np.ndarray | None, i: int) -> dict[str, np.ndarray]:
        """Stage j's work on `done` and `after` (changed in place); the done calls whose work failed."""
        what = self.work[j]
        both = [done] if after is None else [done, after]
        if what == ITEM_WORK:
            pool = self.sim.pools[str(self.services[j])]
            for c in both:
                self._mistakes(c, pool.effect.wrong_item)
            return {}
        if what == PAY_WORK:
            for c in both:
                self.charge(c, i)
            return {}
        if what == HOLD_WORK:
            return hold(self, j, done, after, i)
        assert what == CONFIRM_WORK
        return confirm(self, done, after)

    def _mistakes(self, cells: np.ndarray, p: float) -> np.ndarray:
        """A wrong-item mistake with probability p for each call whose order has the right item so
        far; returns the calls mistaken (R, K, H, P, NR)."""
        t = self.tags
        v = t.split(cells, 2)
        if p <= 0 or t.W == 1:
            return np.zeros(v.shape[:-2] + v.shape[-1:])
        m = binomial(v[..., 0, :], p, self.rng)
        v[..., 0, :] -= m
        v[..., 1, :] += m
        return m

    def charge(self, cells: np.ndarray, i: int) -> None:
        """Payment work for these calls (`sim.rules.orders.charge_counts`): the unpaid are paid."""
        v = self.tags.split(cells, 2)
        R = cells.shape[0]
        unpaid = v[:, :, :, 0].reshape(R, -1).sum(axis=1)
        paid = v[:, :, :, 1].reshape(R, -1).sum(axis=1)
        charged, again, prevented = charge_counts(unpaid, paid)
        rec = self.sim.rec
        rec.add(N.PAYMENTS, i, charged + again)
        rec.add(N.PAYMENTS_DUPLICATED, i, again)
        rec.add(N.DUPLICATES_PREVENTED, i, prevented)
        v[:, :, :, 1] += v[:, :, :, 0]
        v[:, :, :, 0] = 0.0

    def regrid(self, g: Regrid, a_new: int, retries_cal: np.ndarray) -> None:
        """The book on another step length (`sim.fleet.timestep`: orders without an inventory):
        its positions by row, as the flow's rows; the class's new retry calendar."""
        self.pos = [g.rows(p, 3, a_new) for p in self.pos]
        self.out = {k: g.rows(v, 3, a_new) for k, v in self.out.items()}
        self.retries_cal = retries_cal

    # -- lapses, retries, re-logins ---------------------------------------------------------------
    def lapse(self, slot: int) -> None:
        """Every order holding slot `slot` of the class's stock holds nothing now."""
        h = HELD0 + slot
        arrays = [(p, 2) for p in self.pos] + [(c, 2) for c in self.out.values()]
        arrays += [(self.ready, 2), (self.parked, 2)]
        for a, axis in arrays:
            v = self.tags.split(a, axis)
            idx = (slice(None),) * axis
            v[idx + (NONE,)] += v[idx + (h,)]
            v[idx + (h,)] = 0.0
        cal = self.retries_cal
        R, K, SO, Hc = cal.shape
        v = self.tags.split(cal.reshape(R, K, SO // self.tags.n, self.tags.n, Hc), 3)
        v[:, :, :, NONE] += v[:, :, :, h]
        v[:, :, :, h] = 0.0

    def park(self, k: int, o: np.ndarray) -> None:
        """Attempt k's retries (R, O) wait for a re-login."""
        self.parked[:, k] += o

    def unpark(self, k: int, n: np.ndarray, ready: bool) -> np.ndarray:
        """n (R,) of attempt k's parked retries logged in (`ready`: sent next step) or failed;
        returns their order states (R, O)."""
        o = self.take(self.parked[:, k:k + 1], n[:, None])[:, 0]
        self.parked[:, k] -= o
        if ready:
            self.ready[:, k] += o
        return o

    # -- money at the end of a command -----------------------------------------------------------
    def succeeded(self, o: np.ndarray, i: int) -> None:
        """Commands done with order states o (R, K, O): wrong items delivered; a class with no
        payment stage pays now."""
        v = self.tags.split(o, 2)
        if self.tags.W > 1:
            self.sim.rec.add(N.WRONG_ITEMS, i, v[..., 1].sum(axis=(1, 2, 3)))
        if self.settles:
            self.charge(o, i)

    def failed(self, o: np.ndarray, i: int) -> None:
        """Commands failed with order states o (R, ..., O): those paid (not refunded) are money at risk."""
        v = self.tags.split(o, o.ndim - 1)
        self.sim.rec.add(N.FAILED_AFTER_PAYMENT, i, v[..., 1, :].reshape(o.shape[0], -1).sum(axis=1))


class FleetOrders:
    """Every order book and inventory of a run, and the engine's hooks into them."""

    def __init__(self, sim: FleetSim, rng: np.random.Generator) -> None:
        sc = sim.sc
        self.stocks: dict[str, FleetStock] = {}
        for name, svc in sc.services.tools.items():
            if svc.inventory is not None:
                self.stocks[name] = FleetStock(name, svc.inventory, hold_quantity(sc, name), sim.R, sim.dt)
        self.books = {n: OrderBook(sim, n, c, self.stocks, rng) for n, c in sc.workload.classes.items()
                      if c.places_order}
        for name in (N.PAYMENTS, N.PAYMENTS_DUPLICATED, N.DUPLICATES_PREVENTED, N.FAILED_AFTER_PAYMENT, N.REFUNDS,
                     N.WRONG_ITEMS):
            sim.rec.s(name)

    @staticmethod
    def of(sim: FleetSim, rng: np.random.Generator) -> FleetOrders | None:
        return FleetOrders(sim, rng) if any(c.places_order for c in sim.sc.workload.classes.values()) else None

    def tags(self, name: str) -> int:
        """Order states a class's attempts carry (1: it places no order)."""
        b = self.books.get(name)
        return b.tags.n if b is not None else 1

    def step_start(self, step: int) -> None:
        """At an epoch's start the holds of its slot lapse, in the stock and in every order."""
        for st in self.stocks.values():
            if st.epoch_starts(step):
                slot = st.slot(step)
                st.counts.lapse(slot)
                for b in self.books.values():
                    if b.stock is st:
                        b.lapse(slot)

    def close_interval(self, rec: BatchRecorder, i: int) -> None:
        for st in self.stocks.values():
            st.record(rec, i)


__all__ = ["FleetOrders", "OrderBook", "couple"]
