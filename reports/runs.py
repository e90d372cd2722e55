"""Loading what a report is about: one run folder, or a replications folder (rep-001/, ...).

A replications folder is shown through one *pooled* Results: series averaged over the
replications interval by interval, histograms merged (exact, see sim/results/histogram.py), events
from the first replication (the fault timeline is the same in every replication). Its KPIs carry
95% confidence intervals from `sim.stats.replication_summary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim import stats
from sim.errors import ResultsError
from sim.results import Results, summarize
from sim.stats import replication_summary

REP_GLOB = "rep-*"


@dataclass
class RunSet:
    """One thing to report on: a single run (`reps` of length 1, `replications` None) or
    replications of one scenario. `pooled` is what figures and SLO tables are drawn from."""

    label: str
    path: Path
    reps: list[Results]
    pooled: Results
    replications: dict[str, Any] | None

    @property
    def is_replications(self) -> bool:
        return self.replications is not None


def run_kpis(rs: RunSet) -> dict[str, float]:
    """A run's KPI values: the mean over replications, or the single run's value."""
    if rs.replications is not None:
        return {k: (e["mean"] if e["mean"] is not None else math.nan) for k, e in rs.replications["kpis"].items()}
    return stats.kpis(rs.pooled.summary)


def rep_dirs(folder: Path) -> list[Path]:
    """The replication sub-folders of `folder`, in seed order (empty for a plain run folder)."""
    return sorted(p for p in folder.glob(REP_GLOB) if p.is_dir() and (p / "run.json").is_file())


def load_runset(folder: str | Path, label: str | None = None, warmup_s: float | None = None) -> RunSet:
    """Read a run folder or a replications folder. Raises ResultsError with a one-line message
    when the folder is missing or holds neither."""
    path = Path(folder)
    if not path.is_dir():
        raise ResultsError(f"{path}: no such results folder")
    name = label or path.resolve().name
    reps = rep_dirs(path)
    if not reps:
        run = Results.read(path)
        if warmup_s is not None:
            run = _with_warmup(run, warmup_s)
        return RunSet(name, path, [run], run, None)
    runs = [Results.read(p) for p in reps]
    if warmup_s is not None:
        runs = [_with_warmup(r, warmup_s) for r in runs]
    return RunSet(name, path, runs, pool(runs), replication_summary(runs))


def _with_warmup(r: Results, warmup_s: float) -> Results:
    meta = {**r.meta, "warmup_s": warmup_s}
    return Results(meta, r.series, r.histograms, r.events, summarize(meta, r.series, r.histograms), r.scenario)


def pool(runs: list[Results]) -> Results:
    """Series averaged interval by interval, histograms merged, events of the first run."""
    first = runs[0]
    lengths = {r.meta["n_intervals"] for r in runs}
    if len(lengths) != 1:
        raise ResultsError(f"replications differ in length ({sorted(lengths)} intervals): cannot pool them")
    names = set().union(*(r.series for r in runs))
    zero = np.zeros(first.meta["n_intervals"])
    series = {n: np.mean([r.series.get(n, zero) for r in runs], axis=0) for n in names}
    keys = set().union(*(r.histograms for r in runs))
    hists = {k: _merge_triples([r.histograms[k] for r in runs if k in r.histograms]) for k in keys}
    meta = {**first.meta, "seed": [r.meta.get("seed") for r in runs], "replications": len(runs)}
    return Results(meta, series, hists, list(first.events), summarize(meta, series, hists), first.scenario)


def _merge_triples(parts: list[np.ndarray]) -> np.ndarray:
    rows = np.concatenate(parts) if parts else np.zeros((0, 3), np.int64)
    if not len(rows):
        return rows
    keys, inv = np.unique(rows[:, :2], axis=0, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=rows[:, 2]).astype(np.int64)
    return np.column_stack([keys, counts])


def unique_labels(paths: list[Path]) -> list[str]:
    """Short names for runs in a comparison: folder names, with the parent added where they clash."""
    names = [p.resolve().name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]



