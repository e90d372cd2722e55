"""Helpers for the fleet engine's tests: run a batch, measure each replication after warm-up,
compare with theory or with the SimPy engine through 95% intervals."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim"))

from sim_helpers import ROOT, Window, ci, covers, scenario  # noqa: E402

from sim.fleet import simulate_batch  # noqa: E402
from sim.scenario import Scenario  # noqa: E402

__all__ = ["ROOT", "Window", "ci", "covers", "fleet_replicate", "scenario"]


def fleet_replicate(sc: Scenario, n: int, measure: Callable[[Window], dict[str, float]],
                    dt: float | None = None) -> dict[str, list[float]]:
    """n replications of the fleet engine as one batch, measured like `sim_helpers.replicate`."""
    out: dict[str, list[float]] = {}
    for r in simulate_batch(sc, replications=n, dt=dt):
        for k, v in measure(Window(r)).items():
            out.setdefault(k, []).append(v)
    return out
