"""Pools of servers (auth and the tools) in the fleet engine: `concurrency` slots, a bounded
queue, a service time kernel, faults.

Each user of a pool (a class's stage, or the logins) is an *owner* with its own waiting counts
and service calendar, both by row; slots, the queue bound and the fault state are the pool's.
Waiters are served oldest row first within an owner and in proportion across owners (the
arrival order of different classes within a step is random).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.kernels import delay_kernel, dist_key, latency_samples
from sim.fleet.rows import Rows
from sim.fleet.split import add_run, binomial, proportional, systematic, take_oldest
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.scenario.services import Service

if TYPE_CHECKING:
    from sim.fleet.timestep import Regrid

_HALVES = np.array([0.5, 0.5])


class Owner:
    """One user of a pool: waiting (R, NR), calendar (R, H, NR), and this step's finished (R, NR)."""

    def __init__(self, R: int, rows: Rows, H: int) -> None:
        self.wait = np.zeros((R, rows.NR))
        self.cal = np.zeros((R, rows.NR, H))  # (replication, row, finishing step)
        self.done = np.zeros((R, rows.NR))
        self.shed = np.zeros((R, rows.NR))
        self.error = np.zeros((R, rows.NR))
        # of `error`, the calls that failed after their service (not by an outage): half of them
        # after their work was done (`sim.rules.faults.error_timing`; read by sim/fleet/orders.py)
        self.served_error = np.zeros((R, rows.NR))


class Pool:
    def __init__(self, name: str, spec: Service, R: int, rows: Rows, dt: float) -> None:
        self.name, self.spec, self.R, self.rows, self.dt = name, spec, R, rows, dt
        self.samples = latency_samples(dist_key(spec.latency))
        self.mean_s = float(self.samples.mean())
        self.effect: FaultEffect = NO_FAULT
        self._kernels: dict[tuple[float, float], np.ndarray] = {}
        self.kernel = self._kernel(1.0)
        self.H = len(self.kernel) + 8
        self.owners: list[Owner] = []
        self.busy = np.zeros(R)
        self.free = np.zeros(R)
        self.late = np.zeros(R)  # slots freed in this step after this step's arrivals came (see advance)
        self.late_q = np.zeros(R)  # queue places freed in this step after the arrivals came
        self.capacity = float(spec.concurrency)
        # per-interval accumulators (the gauges of the SimPy pool)
        self.acc = {k: np.zeros(R) for k in ("granted", "waited", "wait_s", "served", "time_s", "busy_dt",
                                             "cap_dt", "occ_dt")}

    def _kernel(self, slowdown: float) -> np.ndarray:
        k = self._kernels.get((self.dt, slowdown))
        if k is None:
            k = self._kernels[(self.dt, slowdown)] = delay_kernel(self.samples, self.dt, slowdown)
        return k

    def regrid(self, g: Regrid, dt: float) -> None:
        """The pool on another step length: waiters and calls in service to the same moments."""
        self.dt = dt
        self.kernel = self._kernel(self.effect.slowdown)
        a = self.rows.A
        for o in self.owners:
            o.wait, o.done, o.shed, o.error, o.served_error = (
                g.rows(x, 1, a) for x in (o.wait, o.done, o.shed, o.error, o.served_error))
            o.cal = g.future(g.rows(o.cal, 1, a), 2)

    def add_owner(self) -> Owner:
        o = Owner(self.R, self.rows, self.H + 64)
        self.owners.append(o)
        return o

    def set_effect(self, effect: FaultEffect) -> None:
        self.effect = effect
        self.capacity = float(effect.units_up(self.spec.concurrency))
        self.kernel = self._kernel(effect.slowdown)

    @property
    def waiting(self) -> np.ndarray:
        return sum((o.wait.sum(axis=1) for o in self.owners), np.zeros(self.R))

    # -- phase A: the step's completions, then the waiters that get a slot ----------------------
    def advance(self, step: int, rng: np.random.Generator) -> None:
        """The calls that finish in this step leave; the waiters take the slots they free.

        Departures and this step's arrivals happen at uniform moments of the step, so a slot
        freed in the step is free for a given arrival with probability 1/2: half of the slots
        freed here that the waiters do not take (`late`) open only after the arrivals
        (`release_late`), to whoever waits then. Without it a time step lets arrivals use
        slots freed after them, and P(wait) and P(block) come out ~5% low."""
        H = self.owners[0].cal.shape[2] if self.owners else 1
        b = step % H
        freed = np.zeros(self.R)
        for o in self.owners:
            fin = o.cal[:, :, b].copy()
            o.cal[:, :, b] = 0.0
            n = fin.sum(axis=1)
            freed += n
            self.busy -= n
            self._finish(o, fin, rng)
        if self.effect.outage:
            for o in self.owners:  # an outage fails the queue at once
                o.error += o.wait
                o.wait[:] = 0.0
        self.free = np.maximum(0.0, self.capacity - self.busy)
        before = self.acc["waited"].copy()
        self._serve_waiters(step, rng)
        left = np.minimum(freed, np.floor(self.free))
        self.late = systematic(left, _HALVES, rng)[:, 0] if left.any() else np.zeros(self.R)
        self.free -= self.late
        # a waiter that took a freed slot left its queue place at that moment too
        moved = self.acc["waited"] - before
        self.late_q = systematic(moved, _HALVES, rng)[:, 0] if moved.any() else np.zeros(self.R)

    def release_late(self, step: int, rng: np.random.Generator) -> None:
        """The slots freed after this step's arrivals open: waiters take them."""
        self.late_q = np.zeros(self.R)
        if self.late.any():
            self.free += self.late
            self.late = np.zeros(self.R)
            self._serve_waiters(step, rng)

    def _serve_waiters(self, step: int, rng: np.random.Generator) -> None:
        """Free slots take waiters, oldest first; a call that finishes within the step frees its
        slot for the next waiter in the same step (a few rounds: short services, long steps)."""
        for _ in range(16):
            waiting = np.stack([o.wait.sum(axis=1) for o in self.owners], axis=1)
            g = np.minimum(np.floor(self.free), waiting.sum(axis=1))
            if not g.any():
                return
            per_owner = proportional(g, waiting, rng)
            order = self.rows.order(step)
            for i, o in enumerate(self.owners):
                took = take_oldest(o.wait, per_owner[:, i], order)
                if not took.any():
                    continue
                o.wait -= took
                self.acc["waited"] += took.sum(axis=1)
                self._enter(o, took, step, rng, queued=True)

    def _finish(self, o: Owner, fin: np.ndarray, rng: np.random.Generator) -> None:
        """Calls that finished service: some fail (error rate and error faults)."""
        if not fin.any():
            return
        self.acc["served"] += fin.sum(axis=1)
        p = self.effect.error_with(self.spec.error_rate)
        err = binomial(fin, p, rng) if p > 0 else 0.0
        o.error += err
        o.served_error += err
        o.done += fin - err

    def _enter(self, o: Owner, x: np.ndarray, step: int, rng: np.random.Generator, queued: bool) -> None:
        """Calls that got a slot start service now; those that finish within this step are done."""
        n = x.sum(axis=1)
        if not n.any():
            return
        self.busy += n
        self.free -= n
        self.acc["granted"] += n
        self.acc["time_s"] += n * self.mean_s * self.effect.slowdown
        r, row = np.nonzero(x)
        parts = systematic(x[r, row], self.kernel, rng)  # (m, len(kernel))
        H = o.cal.shape[2]
        now = parts[:, 0]
        if now.any():
            fin = np.zeros_like(x)
            fin[r, row] = now
            self.busy -= fin.sum(axis=1)
            self.free += fin.sum(axis=1)
            self._finish(o, fin, rng)
        if parts.shape[1] > 1:
            add_run(o.cal, r, row, (step + 1) % H, parts[:, 1:])

    # -- phase B: arrivals from the pass -------------------------------------------------------
    def arrive(self, o: Owner, x: np.ndarray, step: int, rng: np.random.Generator) -> None:
        """Calls of one owner arriving in this step: an outage fails them, free slots serve them,
        the rest wait (a full queue sheds the newest)."""
        if not x.any():
            return
        if self.effect.outage:
            o.error += x
            return
        n = x.sum(axis=1)
        g = np.minimum(self.free, n)
        take = np.zeros_like(x)
        if g.any():
            order = self.rows.order(step)
            take = take_oldest(x, g, order)
            self._enter(o, take, step, rng, queued=False)
        rest = x - take
        if not rest.any():
            return
        lim = self.spec.queue_limit
        if lim is not None:
            room = np.maximum(0.0, lim - self.waiting - self.late_q)
            keep = np.minimum(rest.sum(axis=1), room)
            order = self.rows.order(step)
            kept = take_oldest(rest, keep, order)
            o.shed += rest - kept
            rest = kept
        o.wait += rest
        if (self.free >= 1).any():  # slots freed within this step by calls that already finished
            self._serve_waiters(step, rng)

    def end_step(self, dt: float) -> None:
        w = self.waiting
        self.acc["wait_s"] += w * dt  # every waiter waits this whole step (Little: sum of waits)
        self.acc["busy_dt"] += self.busy * dt
        self.acc["cap_dt"] += self.capacity * dt
        self.acc["occ_dt"] += (self.busy + w) * dt

    def timeout_row(self, r0: int, cancel: bool) -> None:
        """Row r0's clients stopped waiting: its work becomes ghost work, or is dropped."""
        G = self.rows.GHOST
        for o in self.owners:
            if cancel and o.cal[:, r0].any():
                self.busy -= o.cal[:, r0].sum(axis=1)
            # calls finished since the last pass (`done`, `error`, `shed`, not yet collected) go
            # with their row too: left in r0 they would be taken for the row's next attempts
            for a in (o.wait, o.cal, o.done, o.error, o.shed, o.served_error):
                if not a[:, r0].any():
                    continue
                if not cancel:
                    a[:, G] += a[:, r0]
                a[:, r0] = 0.0
