"""Session starts per time step, for a batch of replications.

Small runs bin the exact arrival instants of `sim.arrivals` drawn from each replication's own
`arrivals` stream, the very instants the SimPy engine uses with the same seed (common random
numbers between the engines). Large runs draw Poisson counts per step from the same rate curve
(`RateCurve`): the same process, without materialising billions of instants.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.arrivals import RateCurve, arrival_blocks
from sim.scenario import Scenario
from sim.streams import Streams

EXACT_LIMIT = 20_000_000  # session starts (all replications) up to which exact instants are binned


def expected_sessions(sc: Scenario) -> float:
    if sc.arrivals.process == "trace":
        return 0.0
    _, cum = RateCurve.of(sc).integral(sc.run.duration_s)
    return float(cum[-1])


def session_starts(sc: Scenario, seeds: list[int], dt: float, n_steps: int, rng: np.random.Generator) -> np.ndarray:
    """Counts (R, n_steps) of sessions starting in each step."""
    R = len(seeds)
    if sc.population is not None and sc.population.launch is not None:
        return np.zeros((R, 1))  # sessions come from the launch's users (sim/fleet/launch.py)
    exact = sc.arrivals.process == "trace" or expected_sessions(sc) * R <= EXACT_LIMIT or sc.arrivals.process != "poisson"
    if exact:
        out = np.zeros((R, n_steps))
        for r, seed in enumerate(seeds):
            for block in arrival_blocks(sc, Streams(seed)("arrivals"), Path(sc.base_dir)):
                idx = np.minimum((block / dt).astype(np.int64), n_steps - 1)
                out[r] += np.bincount(idx, minlength=n_steps)[:n_steps]
        return out
    grid, cum = RateCurve.of(sc).integral(sc.run.duration_s)
    edges = np.interp(np.arange(n_steps + 1) * dt, grid, cum)
    lam = np.diff(edges)
    return rng.poisson(np.broadcast_to(lam, (R, n_steps))).astype(np.float64)
