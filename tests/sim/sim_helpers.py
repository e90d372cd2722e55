"""Shared helpers for the engine tests: load a shipped scenario, run replications, read KPIs
over the post-warm-up window."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sim.des import simulate
from sim.results import Results, first_interval, window_histogram
from sim.scenario import Scenario, load_scenario
from sim.stats import mean_ci

ROOT = Path(__file__).resolve().parents[2]
VALIDATION = ROOT / "scenarios" / "validation"


def scenario(name: str, *overrides: str) -> Scenario:
    """A scenario under scenarios/ (e.g. 'validation/mm1.yaml'), with `--set` style overrides."""
    return load_scenario(ROOT / "scenarios" / name, list(overrides))


class Window:
    """One replication's series and histograms after the warm-up."""

    def __init__(self, r: Results) -> None:
        self.r = r
        self.start = first_interval(r.meta)
        self.seconds = (r.meta["n_intervals"] - self.start) * r.meta["interval_s"]

    def total(self, name: str) -> float:
        return float(self.r.series[name][self.start:].sum())

    def mean(self, name: str) -> float:
        """Mean of a per-interval gauge over the window (a time average when the gauge is one)."""
        return float(self.r.series[name][self.start:].mean())

    def hist_mean(self, key: str) -> float:
        return window_histogram(self.r.histograms[key], self.start).mean


def replicate(sc: Scenario, n: int, measure: Callable[[Window], dict[str, float]]) -> dict[str, list[float]]:
    """Run n independent replications (seeds run.seed .. run.seed + n - 1), measuring each."""
    out: dict[str, list[float]] = {}
    for i in range(n):
        values = measure(Window(simulate(sc, seed=sc.run.seed + i, replication=i + 1)))
        for k, v in values.items():
            out.setdefault(k, []).append(v)
    return out


def ci(values: list[float]) -> dict[str, Any]:
    """95% Student-t interval over replication means."""
    return mean_ci(values)


def covers(values: list[float], theory: float) -> tuple[bool, str]:
    """Whether the 95% CI of the replication means covers `theory`, and a message that says so."""
    c = ci(values)
    ok = bool(c["low"] <= theory <= c["high"])
    msg = f"mean {c['mean']:.5g}, 95% CI [{c['low']:.5g}, {c['high']:.5g}] (n={c['n']}), theory {theory:.5g}"
    return ok, msg


def cumulative(r: Results, prefix: str) -> np.ndarray:
    """Cumulative sum over intervals of every series whose name starts with `prefix`."""
    parts = [v for k, v in r.series.items() if k.startswith(prefix)]
    return np.cumsum(np.sum(parts, axis=0)) if parts else np.zeros(r.meta["n_intervals"])
