"""Proactive tasks in the fleet engine: commands the agent starts by itself, as arrival counts.

- Schedules: each replication's instants are `sim.arrivals.proactive_times` drawn from its own
  `proactive.schedule` stream, the instants the SimPy engine starts with the same seed, binned
  to steps.
- Follow-ups (`proactive.follow_ups`): of the commands of class `after` that succeed in a step,
  a binomial share `probability` starts class `start` after a delay, spread over the coming
  steps by the delay's kernel (the distribution of `delay_s` on the step grid, as `FollowUps`
  draws it per command); a follow-up due in the step of its success goes in the next.

A task runs on a session that is logged in and ends with the task (the fleet engine models
proactive tasks for scenarios with one command per session and no login: `fleet_missing`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.arrivals import proactive_times
from sim.fleet.client import _from_next_step
from sim.fleet.kernels import delay_kernel, dist_key, latency_samples
from sim.fleet.split import binomial, systematic
from sim.streams import Streams

if TYPE_CHECKING:
    from sim.fleet.engine import FleetSim


class FleetProactive:
    """Scheduled and follow-up starts per class, as counts by step (R, steps or ring)."""

    def __init__(self, sim: FleetSim, rng: np.random.Generator) -> None:
        self.sim, self.rng = sim, rng
        sc = sim.sc
        assert sc.proactive is not None
        names = list(sc.workload.classes)
        self.flows = {fl.name: fl for fl in sim.flows}
        self.scheduled: dict[str, np.ndarray] = {}
        for r, seed in enumerate(sim.seeds):
            starts = proactive_times(sc, Streams(seed)("proactive.schedule"))
            steps = np.minimum((starts.times_s / sim.dt).astype(np.int64), sim.n_steps - 1)
            for name in set(starts.classes):
                mine = np.array([c == name for c in starts.classes], dtype=bool)
                a = self.scheduled.setdefault(name, np.zeros((sim.R, sim.n_steps)))
                a[r] += np.bincount(steps[mine], minlength=sim.n_steps)[: sim.n_steps]
        self.follow: dict[str, list[tuple[str, float, np.ndarray]]] = {}
        for f in sc.proactive.follow_ups:
            kern = _from_next_step(delay_kernel(latency_samples(dist_key(f.delay_s)), sim.dt))
            self.follow.setdefault(f.after, []).append((f.start, f.probability, kern))
        longest = max((len(k) for fs in self.follow.values() for _, _, k in fs), default=1)
        self.H = longest + 2
        self.cal = {n: np.zeros((sim.R, self.H)) for n in names}

    @staticmethod
    def of(sim: FleetSim, rng: np.random.Generator) -> FleetProactive | None:
        return FleetProactive(sim, rng) if sim.sc.proactive is not None else None

    def succeeded(self, name: str, done: np.ndarray, step: int) -> None:
        """Commands of class `name` that succeeded in `step` (R,): their follow-ups are due later."""
        for start, p, kern in self.follow.get(name, ()):
            go = binomial(done, p, self.rng) if p < 1 else done.copy()
            if not go.any():
                continue
            parts = systematic(go, kern, self.rng)  # (R, J): J = 1, 2, ... steps on
            bins = (step + 1 + np.arange(parts.shape[1])) % self.H
            self.cal[start][:, bins] += parts  # the bins are distinct: H exceeds the kernel's length

    def due(self, step: int, i: int) -> None:
        """Start this step's proactive commands (their own sessions, logged in)."""
        from sim.fleet.sending import start_commands  # sending imports the engine's phases
        sim, b = self.sim, step % self.H
        st = sim.states
        for name, fl in self.flows.items():
            x = self.cal[name][:, b].copy()
            self.cal[name][:, b] = 0.0
            sch = self.scheduled.get(name)
            if sch is not None:
                x += sch[:, step]
            if x.any():
                sess = np.zeros((sim.R, st.n))
                sess[:, st.valid0] = x
                start_commands(sim, fl, sess, step, i)
