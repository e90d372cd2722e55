"""Recovery after each fault, from any run folder's results (simulated or measured).

A fault has recovered when the run's success ratio (good completions / commands offered) is
back at its recovery level for good, before the next fault starts: the one definition in
`sim.results.recovery`, which the outage analysis and the reports use too. Recovery time =
that instant minus the fault's end (0 if the run was never down while the fault lasted or
after it). With no recovery before the next fault or the end of the run, the fault is "not
recovered" — the signature of a metastable failure.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.results import Results
from sim.results.histogram import quantile_from_counts
from sim.results.recovery import per_fault


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


def recovery(r: Results) -> list[dict[str, Any]]:
    """One row per fault end in the run's events: `target`, `fault_kind`, `end_s`, `recovered`,
    `recovery_s` (`sim.results.recovery.per_fault`)."""
    return per_fault(r)
