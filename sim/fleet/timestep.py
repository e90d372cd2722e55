"""The adaptive time step of the fleet engine: long steps while the system is quiet, short ones
near capacity, around faults and where the arrival rate moves.

The step is dt0 x 2^k (k = 0 .. levels): dt0 is the fine step (`kernels.choose_dt` or
`--fleet-dt`), the longest divides `run.interval_s`, so steps never straddle an interval. Before
each step the rule (`StepRule.factor`) asks for the longest step that is safe now:

- **quiet**: in every replication no request waits anywhere (gateway, pools, the LLM group) and
  every station is below `BUSY` of its capacity (gateway slots, pool slots, LLM batch slots and
  KV cache); and at most `FAILED` of the interval's attempts so far timed out, were shed or
  rejected (a few very long answers time out at any load);
- **no fault edge**: no fault starts or ends within the client's timeout (`margin_s`) of the
  long step;
- **slow arrivals**: the session start rate changes by less than `RATE_CHANGE` over the step.

Not quiet: back to dt0 at once (one regrid per halving); quiet for `HOLD_S` seconds: the
step doubles (when the step index is even, so the long step starts on its own grid). A time
step's errors are the within-step approximations (a slot freed within the step, latencies
resolved to a step, smoothed by the jitter of e2e); they matter only where something waits, so
the quiet regime may use long steps at the same accuracy (`tests/fleet/test_fleet_adaptive.py`).

`Regrid` carries the state from one step length to the next: every count kept by step (rows by
start step, calendars by finishing step, queues by arrival step) moves to the bin of the same
moment on the new grid. Coarsening is exact (two fine steps make one long step); refining puts a
long step's counts in one of its two halves, alternately by parity (no bias on average), which
is a one-off error of half a fine step for what is in flight at that moment.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from sim.arrivals import RateCurve
from sim.results import names as N
from sim.rules.outcomes import REJECTED, SHED, TIMEOUT

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim

BUSY = 0.8  # a station above this fraction of its capacity is near capacity: fine steps
RATE_CHANGE = 0.05  # largest relative change of the arrival rate over one long step
FAILED = 0.01  # at most this fraction of the interval's attempts timed out, shed or rejected
HOLD_S = 10.0  # quiet this long (simulated seconds) at one step length before it doubles


class Regrid:
    """The map from one step grid to the next (factor 2 up or down) for arrays kept by step."""

    def __init__(self, n_old: int, coarser: bool) -> None:
        self.coarser = coarser
        self.n_old = n_old
        self.n_new = n_old // 2 if coarser else 2 * n_old

    def step_of(self, s: np.ndarray) -> np.ndarray:
        """The new step of old step s (refining: one of its halves, alternately by parity)."""
        return s // 2 if self.coarser else 2 * s + (s % 2)

    def _move(self, arr: np.ndarray, axis: int, old_steps: np.ndarray, new_steps: np.ndarray,
              w_new: int) -> np.ndarray:
        a = np.moveaxis(arr, axis, 0)
        out = np.zeros((w_new, *a.shape[1:]))
        np.add.at(out, new_steps % w_new, a[old_steps % a.shape[0]])
        return np.ascontiguousarray(np.moveaxis(out, 0, axis))  # calendars are written through flat indices

    def past(self, arr: np.ndarray, axis: int, w_new: int | None = None) -> np.ndarray:
        """A ring of bins by start or arrival step, holding steps n - W .. n - 1 (the rows, the
        queues); what would be older than the new ring goes to its oldest bin."""
        w_old = arr.shape[axis]
        w_new = w_old if w_new is None else w_new
        s = np.arange(self.n_old - w_old, self.n_old)
        new = np.maximum(self.step_of(s), self.n_new - w_new)
        return self._move(arr, axis, s, new, w_new)

    def future(self, arr: np.ndarray, axis: int) -> np.ndarray:
        """A calendar by finishing or due step, holding steps n .. n + H - 1 (same H)."""
        h = arr.shape[axis]
        s = np.arange(self.n_old, self.n_old + h)
        new = np.minimum(self.step_of(s), self.n_new + h - 1)
        return self._move(arr, axis, s, new, h)

    def rows(self, arr: np.ndarray, axis: int, a_new: int) -> np.ndarray:
        """An array by row (A ring rows, then the ghost row) on the new rows (a_new + 1)."""
        a = np.moveaxis(arr, axis, 0)
        ring = self.past(a[:-1], 0, a_new)
        return np.ascontiguousarray(np.moveaxis(np.concatenate([ring, a[-1:]], axis=0), 0, axis))


class StepRule:
    """Which step length the next step may have (see the module docstring)."""

    def __init__(self, sim: FleetSim, dt0: float, max_dt: float) -> None:
        sc = sim.sc
        self.dt0 = dt0
        self.levels = 0
        while (dt0 * 2 ** (self.levels + 1) <= max_dt + 1e-12
               and _divides(dt0 * 2 ** (self.levels + 1), sc.run.interval_s)):
            self.levels += 1
        self.margin_s = sc.clients.timeout_s or 30.0
        self.edges = sorted({t for f in sc.faults for t in (f.at_s, f.at_s + f.duration_s)})
        self.rate = RateCurve.of(sc) if sc.arrivals.process != "trace" else None
        self.calm = 0

    def factor(self, sim: FleetSim, level: int, n: int) -> int:
        """The level (step = dt0 x 2^level) of the step about to run at step index n of the
        current level: one up, the same, or lower."""
        if not self._quiet(sim, level):
            self.calm = 0
            return 0
        self.calm += 1
        if level >= self.levels or self.calm * sim.dt < HOLD_S or n % 2:
            return level
        dt = self.dt0 * 2 ** (level + 1)
        if not (self._calm_edges(sim.now, dt) and self._slow(sim.now, dt)) or sim.now + dt > sim.sc.run.duration_s + 1e-9:
            return level
        self.calm = 0
        return level + 1

    def _quiet(self, sim: FleetSim, level: int) -> bool:
        if level > 0 and not (self._calm_edges(sim.now, sim.dt) and self._slow(sim.now, sim.dt)):
            return False
        gw = sim.gw
        if gw is not None and ((gw.waiting > 0).any() or (gw.in_use > BUSY * gw.capacity).any()):
            return False
        for p in sim.all_pools():
            if (p.waiting > 0).any() or (p.busy > BUSY * p.capacity).any():
                return False
        g = sim.llm
        if g is not None:
            slots = g.up * g.spec.max_num_seqs
            if (g.waiting > 0).any() or (g.n_dec > BUSY * slots).any() or (g.kv > BUSY * g.up * g.kv_cap).any():
                return False
        i = min(int(sim.now / sim.sc.run.interval_s + 1e-9), sim.rec.n_intervals - 1)
        failed = np.sum([sim.rec.s(N.attempt_failed(r))[:, i] for r in (TIMEOUT, SHED, REJECTED)], axis=0)
        sent = np.sum([sim.rec.s(N.of_class("attempts", c))[:, i] for c in sim.classes], axis=0)
        return bool(np.all(failed <= FAILED * sent))

    def _calm_edges(self, t0: float, dt: float) -> bool:
        return not any(t0 - self.margin_s <= e <= t0 + dt + self.margin_s for e in self.edges)

    def _slow(self, t0: float, dt: float) -> bool:
        if self.rate is None:
            return True
        r = self.rate(np.array([t0, t0 + dt]))
        return bool(abs(r[1] - r[0]) <= RATE_CHANGE * max(r[0], 1e-300))


def _divides(dt: float, span_s: float) -> bool:
    k = span_s / dt
    return k >= 1 - 1e-9 and abs(k - round(k)) < 1e-6 and math.isfinite(k)
