"""Recovery after faults, from any run folder's results (simulated or measured).

An interval is *within SLO* when every class with SLOs and traffic in it meets its success
rate and e2e p99 targets there (classes with no target are ignored; an interval where nothing
ended is neither good nor bad and is skipped). A fault has *recovered* at the start of the
first interval, at or after the interval holding the fault's end, from which `hold` intervals
with traffic in a row are within SLO; recovery time = that instant minus the fault's end (0 if
the service never left its SLO). With no such run of intervals before the end of the run, the
fault is "not recovered" — the signature of a metastable failure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.results import REASONS, Results
from sim.results.histogram import quantile_from_counts


def interval_health(r: Results) -> np.ndarray:
    """Per interval: 1 within SLO, 0 outside, -1 nothing ended (no verdict)."""
    n = int(r.meta["n_intervals"])
    slos = r.meta.get("slos") or {}
    verdict = np.full(n, -1, dtype=int)
    for cls, targets in slos.items():
        ok = _class_ok(r, cls, targets or {}, n)
        if ok is None:
            continue
        known = ok >= 0
        verdict = np.where(known & (verdict != 0), ok, verdict)
    return verdict


def _class_ok(r: Results, cls: str, targets: dict[str, Any], n: int) -> np.ndarray | None:
    rate, p99 = targets.get("success_rate"), targets.get("e2e_p99_s")
    if rate is None and p99 is None:
        return None
    completed = r.series.get(f"completed:{cls}", np.zeros(n))
    failed = sum((r.series.get(f"failed:{cls}:{x}", np.zeros(n)) for x in REASONS), np.zeros(n))
    ended = completed + failed
    out = np.where(ended > 0, 1, -1)
    if rate is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where((ended > 0) & (completed / np.maximum(ended, 1) < rate), 0, out)
    if p99 is not None:
        out = np.where((ended > 0) & (interval_quantile(r, f"e2e:{cls}", 0.99) > p99), 0, out)
    return out


def interval_quantile(r: Results, key: str, q: float) -> np.ndarray:
    """The q-quantile of histogram `key` in each interval (NaN where it has no samples)."""
    out = np.full(int(r.meta["n_intervals"]), math.nan)
    tr = r.histograms.get(key)
    if tr is None or not len(tr):
        return out
    for i in np.unique(tr[:, 0]):
        rows = tr[tr[:, 0] == i]
        out[int(i)] = quantile_from_counts(dict(zip(rows[:, 1].tolist(), rows[:, 2].tolist(), strict=True)), q)
    return out


def recovery(r: Results, hold: int = 2) -> list[dict[str, Any]]:
    """One row per fault end in the run's events: when it ended, and how long until back within SLO."""
    dt = float(r.meta["interval_s"])
    health = interval_health(r)
    n = len(health)
    rows = []
    for e in r.events:
        if e.get("kind") != "fault_end":
            continue
        end = float(e["t_s"])
        row: dict[str, Any] = {"target": e.get("target"), "fault_kind": e.get("fault_kind"), "end_s": end,
                               "recovered": False, "recovery_s": None}
        seen, first = 0, None
        for i in range(min(n - 1, int(end / dt)), n):
            if health[i] < 0:
                continue
            if health[i] == 1:
                first = i if seen == 0 else first
                seen += 1
                if seen >= hold:
                    break
            else:
                seen, first = 0, None
        if first is not None and seen >= min(hold, _left(health, first)):
            row["recovered"] = True
            row["recovery_s"] = max(0.0, first * dt - end)
        rows.append(row)
    return rows


def _left(health: np.ndarray, i: int) -> int:
    """Intervals with a verdict from i to the end (a short tail can hold fewer than `hold`)."""
    return int((health[i:] >= 0).sum())
