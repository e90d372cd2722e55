"""The gateway in the fleet engine: rate limit, admission queue (discipline, priorities, bound,
deadline drop) and `concurrency` slots held for a whole attempt.

The queue is a `Fifo` per priority level (lanes: the classes of that level), by start step, so
every waiter's age is known: those older than the client's timeout are ghost work (their
client has given up) unless the gateway drops them (`Deadlines.gateway_drops`).

Adaptive LIFO is the count form of `sim.rules.admission.AdaptiveLifo`: per replication the
instant the queue was last empty (noted as `AdmissionQueue` notes it: when nobody but the step's
arrivals waits, when a grant empties it); a standing queue drops its cohorts of `stale_age_steps`
or more steps (the rule's target on the step grid) and serves newest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.fleet.fifo import Fifo
from sim.fleet.rows import Rows
from sim.rules.admission import adaptive_of
from sim.rules.deadlines import Deadlines
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.rules.ratelimit import RateLimiter
from sim.scenario.services import Gateway as GatewaySpec

if TYPE_CHECKING:
    from sim.fleet.timestep import Regrid

RING = 1 << 14  # steps of queue history kept (older waiters share the oldest bin)


class FleetGateway:
    def __init__(self, spec: GatewaySpec, classes: list[str], prio: dict[str, int], deadlines: Deadlines,
                 R: int, rows: Rows) -> None:
        self.spec, self.R, self.rows = spec, R, rows
        self.lifo = spec.discipline == "lifo"
        self.adaptive = adaptive_of(spec)
        self.empty_at = np.zeros(R)  # adaptive LIFO: when each replication's queue was last empty
        self.drops = deadlines.gateway_drops() or deadlines.servers_cancel()
        levels = sorted({prio[c] for c in classes}) if spec.priority else [0]
        self.levels = levels
        self.lane = {c: (levels.index(prio[c]) if spec.priority else 0) for c in classes}
        self.lane_idx = {c: [k for k in classes if self.lane[k] == self.lane[c]].index(c) for c in classes}
        self.queues = [Fifo(R, sum(1 for c in classes if self.lane[c] == i), RING) for i in range(len(levels))]
        self.classes = classes
        self.effect: FaultEffect = NO_FAULT
        self.capacity = float(spec.concurrency)
        self.in_use = np.zeros(R)
        self.limiters = [RateLimiter(spec.rate_limit) for _ in range(R)]
        self.acc = {k: np.zeros(R) for k in ("granted", "waited", "wait_s", "busy_dt", "cap_dt", "occ_dt")}

    def set_effect(self, effect: FaultEffect, step: int) -> dict[str, np.ndarray]:
        """Apply faults (at the start of `step`, before its timeouts); an outage fails every
        waiter (returns them per class, by row (R, NR))."""
        self.effect = effect
        self.capacity = float(effect.units_up(self.spec.concurrency))
        failed: dict[str, np.ndarray] = {}
        if effect.outage:
            for i, q in enumerate(self.queues):
                win = q.window(step)
                failed |= self._by_row(i, q.q[:, :, win], step - (np.arange(len(win)) + q.oldest), step,
                                      timed_out=False)
                q.clear()
        return failed

    def _by_row(self, level: int, took: np.ndarray, ages: np.ndarray, step: int,
                timed_out: bool = True) -> dict[str, np.ndarray]:
        """Waiters `took` (R, lanes, bins) of a level's queue, aged `ages` (bins,) steps: per class
        of the level, by row (R, NR); those older than the rows are the ghost row's. Before this
        step's timeouts (`timed_out` False) a waiter A steps old is still its row's (r0)."""
        A = self.rows.A
        out = {}
        for c in self.classes:
            if self.lane[c] != level:
                continue
            t = took[:, self.lane_idx[c], :]
            rows = np.zeros((self.R, self.rows.NR))
            hi = A if timed_out else A + 1
            # ages 0 .. hi - 1 in two groups of distinct rows (the newest step's bin is empty before
            # the timeouts: nothing was sent yet in this step)
            for live in (ages < min(hi, A), (ages >= A) & (ages < hi)):
                if live.any():
                    rows[:, (step - ages[live]) % A] += t[:, live]
            rows[:, self.rows.GHOST] += t[:, ages >= hi].sum(axis=1)
            out[c] = rows
        return out

    def regrid(self, g: Regrid) -> None:
        for q in self.queues:
            q.regrid(g)

    @property
    def waiting(self) -> np.ndarray:
        return sum((q.waiting for q in self.queues), np.zeros(self.R))

    def rate_limit(self, n: np.ndarray, now: float) -> np.ndarray:
        """How many of n[r] attempts get a token (the global bucket; `TokenBucket.take_many`)."""
        out = n.copy()
        for r, lim in enumerate(self.limiters):
            if lim.global_bucket is not None and n[r] > 0:
                out[r] = lim.global_bucket.take_many(now, int(n[r]))
        return out

    def enqueue(self, c: str, x: np.ndarray, step: int,
                rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Queue x[r] attempts of class c; returns (shed of c (R,), evicted per class by row (R, NR))."""
        lim = self.spec.queue_limit
        evicted: dict[str, np.ndarray] = {}
        lane = self.lane[c]
        if lim is not None:
            room = np.maximum(0.0, lim - self.waiting)
            over = np.maximum(0.0, x - room)
            if self.spec.priority and over.any():
                for lv in range(len(self.levels) - 1, lane, -1):  # evict the newest of less important levels
                    q = self.queues[lv]
                    got, ages = q.take_newest(step, np.minimum(over, q.waiting), rng)
                    over -= got.sum(axis=(1, 2))
                    for cc, rows in self._by_row(lv, got, ages, step).items():
                        if rows.any():
                            evicted[cc] = evicted.get(cc, 0) + rows
            shed = np.minimum(x, over)
        else:
            shed = np.zeros(self.R)
        q = self.queues[lane]
        add = np.zeros((self.R, q.q.shape[1]))
        add[:, self.lane_idx[c]] = x - shed
        q.push(step, add)
        return shed, evicted

    def drop_stale(self, step: int, now: float, dt: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Adaptive LIFO: the stale attempts standing queues drop, per class by row (R, NR), and
        which replications' queues stand (R,)."""
        out: dict[str, np.ndarray] = {}
        rule = self.adaptive
        if rule is None:
            return out, np.zeros(self.R, dtype=bool)
        standing = (self.waiting > 0) & rule.standing(self.empty_at, now)
        if standing.any():
            for i, q in enumerate(self.queues):
                taken, ages = q.take_older_bins(step, rule.stale_age_steps(dt), standing)
                if taken.any():
                    out |= self._by_row(i, taken, ages, step)
        # nobody left but this step's arrivals: the queue drained now and they joined it after
        # (as `AdmissionQueue.offer` drops stale waiters before it queues an arrival)
        earlier = sum((q.waiting - q.arrived_at(step) for q in self.queues), np.zeros(self.R))
        self.empty_at = np.where(earlier > 0, self.empty_at, now)
        return out, (self.waiting > 0) & rule.standing(self.empty_at, now)

    def grant(self, step: int, rng: np.random.Generator, newest_first: np.ndarray | None = None,
              now: float = 0.0) -> dict[str, np.ndarray]:
        """Fill free slots from the queue, most important level first; per class the admitted
        attempts by row (R, NR). `newest_first` (R,): replications served LIFO (adaptive LIFO's
        standing queues; default: the discipline's)."""
        if self.drops:
            for q in self.queues:
                q.take_older(step, self.rows.A)
        lifo = np.full(self.R, self.lifo) if newest_first is None else newest_first
        free = np.maximum(0.0, self.capacity - self.in_use)
        out: dict[str, np.ndarray] = {}
        for i, q in enumerate(self.queues):
            for order in (True, False):  # the LIFO replications, then the FIFO ones
                k = free * (lifo == order)
                if k.any():
                    free -= self._serve(i, q, step, k, rng, order, out)
        if self.adaptive is not None:
            self.empty_at = np.where(self.waiting > 0, self.empty_at, now)
        return out

    def _serve(self, i: int, q: Fifo, step: int, k: np.ndarray, rng: np.random.Generator, lifo: bool,
               out: dict[str, np.ndarray]) -> np.ndarray:
        """Admit k[r] of level i's queue into `out` (rows per class, added to); how many (R,)."""
        took, ages = q.pop(step, k, rng, lifo=lifo)
        row_of = np.where(ages < self.rows.A, (step - ages) % self.rows.A, self.rows.GHOST)
        n = took.sum(axis=(1, 2))
        if not n.any():
            return n
        self.in_use += n
        self.acc["granted"] += n
        for c in self.classes:
            if self.lane[c] != i:
                continue
            t = took[:, self.lane_idx[c], :]
            rr, w = np.nonzero(t)
            rows = out.get(c)
            if rows is None:
                rows = out[c] = np.zeros((self.R, self.rows.NR))
            np.add.at(rows, (rr, row_of[w]), t[rr, w])
            self.acc["waited"] += (t * (ages > 0)).sum(axis=1)
        return n

    def end_step(self, dt: float) -> None:
        w = self.waiting
        self.acc["wait_s"] += w * dt
        self.acc["busy_dt"] += self.in_use * dt
        self.acc["cap_dt"] += self.capacity * dt
        self.acc["occ_dt"] += (self.in_use + w) * dt
