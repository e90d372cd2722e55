"""What the fleet engine writes while it runs: per-interval series and log histograms for a
batch of replications, turned into one `Results` per replication at the end (source "fleet").

Series are (R, n_intervals) arrays keyed by the names of `sim.results.names`; histograms are
dense (R, buckets) counts for the interval in progress, flushed into (interval, bucket, count)
rows when it ends, so memory is bounded by intervals x occupied buckets, as in the SimPy recorder.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.results import Results
from sim.results import names as N
from sim.results.files import FORMAT
from sim.results.histogram import GAMMA, MIN_VALUE
from sim.results.summary import summarize

_LOG_G = math.log(GAMMA)
LO_BUCKET = math.floor(math.log(1e-5) / _LOG_G)  # 10 us
HI_BUCKET = math.floor(math.log(1e6) / _LOG_G)  # 11.6 days
_MIN_BUCKET = math.floor(math.log(MIN_VALUE) / _LOG_G)


def bucket_index(x_s: np.ndarray) -> np.ndarray:
    """Dense bucket index (0-based from LO_BUCKET) of values in seconds."""
    b = np.floor(np.log(np.maximum(x_s, 1e-300)) / _LOG_G)
    return (np.clip(b, LO_BUCKET, HI_BUCKET) - LO_BUCKET).astype(np.int64)


class BatchRecorder:
    """Series and histograms for R replications at once."""

    def __init__(self, R: int, duration_s: float, interval_s: float, classes: list[str]) -> None:
        self.R, self.interval_s, self.classes = R, interval_s, list(classes)
        self.n_intervals = max(1, math.ceil(duration_s / interval_s - 1e-9))
        self.series: dict[str, np.ndarray] = {}
        self.events: list[list[dict[str, Any]]] = [[] for _ in range(R)]
        self._hist_cur: dict[str, np.ndarray] = {}
        self._hist_rows: dict[str, list[list[np.ndarray]]] = {}
        self._cur = 0
        for c in classes:
            for m in N.CLASS_COUNTERS:
                self.s(N.of_class(m, c))
            for r in N.REASONS:
                self.s(N.failed(c, r))
            for h in N.HIST_METRICS:
                self._hist(N.hist(h, c))
        for name in (*N.RUN_COUNTERS, *(N.attempt_failed(r) for r in N.REASONS)):
            self.s(name)

    def s(self, name: str) -> np.ndarray:
        """The (R, n_intervals) array of a series (created zero on first use)."""
        a = self.series.get(name)
        if a is None:
            a = self.series[name] = np.zeros((self.R, self.n_intervals))
        return a

    def add(self, name: str, i: int, values: np.ndarray | float) -> None:
        self.s(name)[:, i] += values

    def set(self, name: str, i: int, values: np.ndarray | float) -> None:
        self.s(name)[:, i] = values

    def _hist(self, key: str) -> np.ndarray:
        h = self._hist_cur.get(key)
        if h is None:
            h = self._hist_cur[key] = np.zeros((self.R, HI_BUCKET - LO_BUCKET + 1))
            self._hist_rows[key] = [[] for _ in range(self.R)]
        return h

    def record(self, metric: N.HistMetric, cls: str, values_s: np.ndarray, counts: np.ndarray) -> None:
        """Add `counts` (R, Q) samples of `values_s` (R, Q) or (Q,) seconds to a class histogram."""
        if not counts.any():
            return
        h = self._hist(N.hist(metric, cls))
        b = bucket_index(np.broadcast_to(values_s, counts.shape))
        flat = (np.arange(self.R)[:, None] * h.shape[1] + b).ravel()
        np.add.at(h.reshape(-1), flat, counts.ravel())  # 1-D: numpy's fast path

    def record_at(self, metric: N.HistMetric, cls: str, r_idx: np.ndarray, values_s: np.ndarray,
                  counts: np.ndarray) -> None:
        """Add counts[j] samples of values_s[j] seconds to replication r_idx[j]'s class histogram."""
        if not len(counts) or not counts.any():
            return
        h = self._hist(N.hist(metric, cls))
        np.add.at(h.reshape(-1), r_idx * h.shape[1] + bucket_index(values_s), counts)

    def close_interval(self, i: int) -> None:
        """Flush the histograms of interval i."""
        for key, h in self._hist_cur.items():
            r_idx, b_idx = np.nonzero(h)
            if len(r_idx):
                vals = h[r_idx, b_idx]
                for r in np.unique(r_idx):
                    m = r_idx == r
                    rows = np.column_stack([np.full(m.sum(), i), b_idx[m] + LO_BUCKET,
                                            np.rint(vals[m])]).astype(np.int64)
                    self._hist_rows[key][r].append(rows)
                h[:] = 0.0

    def event(self, r: int | None, t_s: float, kind: str, target: str = "", **detail: Any) -> None:
        for k in range(self.R) if r is None else [r]:
            self.events[k].append({"t_s": round(t_s, 6), "kind": kind, "target": target, **detail})

    def results(self, meta: dict[str, Any], seeds: list[int]) -> list[Results]:
        out = []
        for r in range(self.R):
            m = {"format": FORMAT, "histogram_gamma": GAMMA, "interval_s": self.interval_s,
                 "n_intervals": self.n_intervals, "classes": self.classes, **meta,
                 "seed": seeds[r], "replication": r}
            series = {k: v[r].copy() for k, v in self.series.items()}
            hists = {}
            for key, per in self._hist_rows.items():
                hists[key] = np.concatenate(per[r]) if per[r] else np.zeros((0, 3), dtype=np.int64)
            out.append(Results(m, series, hists, list(self.events[r]), summarize(m, series, hists)))
        return out
