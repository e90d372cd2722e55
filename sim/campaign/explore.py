"""Where does a system lock in? A sweep over (load x trigger magnitude x trigger duration),
several replications per cell, each judged by `analyse(...)["stuck_at_end"]`.

Load multiplies the scenario's arrival rate (`arrivals.scale`); the trigger is one fault of the
scenario (`fault` index), whose `magnitude` and `duration_s` are swept. Cells run in a process
pool; replication r of every cell uses seed `run.seed + r` (common random numbers, so the map's
boundary is not blurred by different arrival draws in neighbouring cells).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim.campaign.metastability import analyse
from sim.campaign.overlay import load_with_overlay
from sim.des import simulate
from sim.errors import ScenarioError
from sim.parallel import run_tasks

LOCKED_IN = 0.5  # a cell locks in when at least this fraction of its replications is stuck


def locked_in(stuck_fraction: float) -> bool:
    """The map's rule for a cell: at least half of its replications stuck."""
    return stuck_fraction >= LOCKED_IN


def cell_overrides(fault: int, load: float | None = None, magnitude: float | None = None,
                   duration_s: float | None = None) -> list[str]:
    """The overrides of one cell: `arrivals.scale` = load, the trigger's (faults[fault]) magnitude
    and duration; None leaves that one as the scenario has it."""
    out = [f"arrivals.scale={load}"] if load is not None else []
    if magnitude is not None:
        out.append(f"faults.{fault}.magnitude={magnitude}")
    if duration_s is not None:
        out.append(f"faults.{fault}.duration_s={duration_s}")
    return out


@dataclass(frozen=True)
class Grid:
    loads: tuple[float, ...]
    magnitudes: tuple[float, ...]
    durations_s: tuple[float, ...]
    replications: int = 4
    fault: int = 0


@dataclass
class VulnerabilityMap:
    """`stuck[i_load, i_magnitude, i_duration]` = fraction of replications stuck."""

    scenario: str
    grid: Grid
    stuck: np.ndarray
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        g = self.grid
        return {"scenario": self.scenario, "loads": g.loads, "magnitudes": g.magnitudes,
                "durations_s": g.durations_s, "replications": g.replications, "fault": g.fault,
                "stuck_fraction": self.stuck.tolist(), "runs": self.runs}

    def critical_magnitude(self, i_load: int, i_duration: int) -> float | None:
        """The smallest magnitude at which at least half the replications lock in (None: none do)."""
        col = self.stuck[i_load, :, i_duration]
        hit = [m for m, f in zip(self.grid.magnitudes, col, strict=True) if locked_in(f)]
        return min(hit) if hit else None


def _cell(args: tuple[str, tuple[str, ...], int, float, float, float, int]) -> dict[str, Any]:
    path, sets, fault, load, mag, dur, seed = args
    overrides = [*sets, *cell_overrides(fault, load, mag, dur)]
    sc = load_with_overlay(path, None, overrides, seed=seed)
    a = analyse(simulate(sc, seed=seed))
    return {"load": load, "magnitude": mag, "duration_s": dur, "seed": seed, "stuck": a["stuck_at_end"],
            "tail_success_ratio": a["tail_success_ratio"], "attempts_per_command": a["attempts_per_command"]}


def explore_vulnerability(path: str | Path, grid: Grid, overrides: Sequence[str] = (), jobs: int = 2,
                          progress: Callable[[float], None] | None = None) -> VulnerabilityMap:
    """Run the sweep (jobs processes; 1 = in this process) and return the map."""
    sc = load_with_overlay(path, None, list(overrides))
    if not 0 <= grid.fault < len(sc.faults):
        raise ScenarioError(f"fault index {grid.fault} out of range (the scenario has {len(sc.faults)} faults)",
                            file=str(path), path="faults")
    seeds = [sc.run.seed + r for r in range(grid.replications)]
    tasks = [(str(path), tuple(overrides), grid.fault, lo, m, d, s)
             for lo in grid.loads for m in grid.magnitudes for d in grid.durations_s for s in seeds]
    runs = run_tasks(_cell, tasks, jobs, progress)
    shape = (len(grid.loads), len(grid.magnitudes), len(grid.durations_s), grid.replications)
    stuck = np.array([r["stuck"] for r in runs], dtype=float).reshape(shape).mean(axis=3)
    return VulnerabilityMap(sc.name, grid, stuck, runs)


def format_map(vm: VulnerabilityMap) -> str:
    """One text table per load: magnitude rows x duration columns, fraction stuck."""
    g = vm.grid
    lines = []
    for i, load in enumerate(g.loads):
        lines.append(f"load x{load:g}: fraction of {g.replications} replications stuck")
        lines.append("  magnitude \\ duration " + " ".join(f"{d:>6g}s" for d in g.durations_s))
        for j, m in enumerate(g.magnitudes):
            lines.append(f"  {m:>21g} " + " ".join(f"{vm.stuck[i, j, k]:>7.2f}" for k in range(len(g.durations_s))))
    return "\n".join(lines)
