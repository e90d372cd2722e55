"""Counting what a load run measures, in the simulator's results format.

A `Tally` lives in every load-generating process: counters per (series, interval) and log
histogram buckets per (metric:class, interval, bucket) — exact to 1%, from `sim.results`.
`drain()` hands over what was counted since the last call (a delta, plain lists, small enough
for Locust's worker reports); a `Collector` on the master adds the deltas of every worker, so
histograms merge exactly (adding counts) and nothing is counted twice. `Collector.results()`
builds the same `Results` a simulation writes (meta source "loadtest").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from sim.results import REASONS, Recorder, Results, summarize
from sim.results import names as N
from sim.results.histogram import bucket_of

Delta = dict[str, Any]


class Tally:
    """Per-process counts; times are seconds since the run's t0 (shared by every worker)."""

    def __init__(self, duration_s: float, interval_s: float) -> None:
        self.interval_s = interval_s
        self.n_intervals = max(1, int(np.ceil(duration_s / interval_s - 1e-9)))
        self._inv = 1.0 / interval_s
        self._counts: dict[tuple[str, int], float] = {}
        self._buckets: Counter[tuple[str, int, int]] = Counter()
        self._events: list[dict[str, Any]] = []
        self.totals: Counter[str] = Counter()  # whole-run counters (not per interval)
        self.frozen = False  # after the run's end: nothing more is counted

    def freeze(self) -> Delta:
        """The last delta; later counts are ignored (the end of the run is one instant)."""
        out = self.drain()
        self.frozen = True
        return out

    def index(self, t: float) -> int:
        return min(max(0, int(t * self._inv)), self.n_intervals - 1)

    # count and observe run several times per request: the interval index is computed inline
    def count(self, name: str, t: float, n: float = 1) -> None:
        if self.frozen:
            return
        i = int(t * self._inv)
        key = (name, i if 0 <= i < self.n_intervals else self.index(t))
        counts = self._counts
        counts[key] = counts.get(key, 0.0) + n

    def observe(self, key: str, t: float, value_s: float) -> None:
        """One latency sample (seconds) of histogram `key` (`metric:class`) at time t."""
        if self.frozen:
            return
        i = int(t * self._inv)
        k = (key, i if 0 <= i < self.n_intervals else self.index(t), bucket_of(value_s))
        buckets = self._buckets
        buckets[k] = buckets.get(k, 0) + 1

    def event(self, t: float, kind: str, target: str = "", **detail: Any) -> None:
        if self.frozen:
            return
        self._events.append({"t_s": round(t, 6), "kind": kind, "target": target, **detail})

    def peek(self) -> tuple[defaultdict[str, float], dict[str, Counter[int]], list[dict[str, Any]]]:
        """What was counted since the last drain, summed over intervals (series totals,
        histogram buckets per key, events), without draining: for the live display."""
        series: defaultdict[str, float] = defaultdict(float)
        for (name, _i), v in self._counts.items():
            series[name] += v
        return series, _buckets_by_key(self._buckets), list(self._events)

    def drain(self) -> Delta:
        """What was counted since the last drain, as plain lists (msgpack/JSON friendly)."""
        out: Delta = {
            "series": [[k, i, v] for (k, i), v in self._counts.items()],
            "hists": [[k, i, b, c] for (k, i, b), c in self._buckets.items()],
            "events": self._events,
            "totals": dict(self.totals),
        }
        self._counts, self._buckets, self._events = {}, Counter(), []
        self.totals = Counter()
        return out


class Collector:
    """The master's sum of every worker's deltas."""

    def __init__(self, duration_s: float, interval_s: float, classes: list[str]) -> None:
        self.rec = Recorder(duration_s, interval_s, classes)
        self.buckets: Counter[tuple[str, int, int]] = Counter()
        self.totals: Counter[str] = Counter()
        self.deltas = 0

    def merge(self, delta: Delta | None) -> None:
        if not delta:
            return
        n = self.rec.n_intervals
        for name, i, v in delta.get("series", ()):
            self.rec.series(name)[min(int(i), n - 1)] += v
        for key, i, b, c in delta.get("hists", ()):
            self.buckets[(key, min(int(i), n - 1), int(b))] += int(c)
        self.rec.events.extend(delta.get("events", ()))
        self.totals.update(delta.get("totals", {}))
        self.deltas += 1

    def peek(self) -> tuple[defaultdict[str, float], dict[str, Counter[int]], list[dict[str, Any]]]:
        """Everything merged so far (series totals, buckets per key, events), for the live display."""
        series: defaultdict[str, float] = defaultdict(float, self.rec.totals())
        return series, _buckets_by_key(self.buckets), list(self.rec.events)

    def histograms(self) -> dict[str, np.ndarray]:
        rows: dict[str, list[tuple[int, int, int]]] = {}
        for (key, i, b), c in self.buckets.items():
            rows.setdefault(key, []).append((i, b, c))
        return {k: np.array(sorted(v), dtype=np.int64).reshape(-1, 3) for k, v in rows.items()}

    def results(self, meta: dict[str, Any]) -> Results:
        """The run's `Results`; `in_flight` is what conservation leaves at each interval's end."""
        rec = self.rec
        started = sum(np.cumsum(rec.series(N.of_class("arrived", c))) for c in rec.classes)
        ended = sum(np.cumsum(rec.series(N.of_class("completed", c))) + sum(
            np.cumsum(rec.series(N.failed(c, r))) for r in REASONS) for c in rec.classes)
        rec.series(N.IN_FLIGHT)[:] = list(np.asarray(started - ended, dtype=float))
        rec.events.sort(key=lambda e: e["t_s"])
        res = Results.from_recorder(rec, meta)
        res.histograms = self.histograms()
        res.summary = summarize(res.meta, res.series, res.histograms)
        return res



def _buckets_by_key(buckets: Counter[tuple[str, int, int]]) -> dict[str, Counter[int]]:
    out: dict[str, Counter[int]] = {}
    for (key, _i, b), c in buckets.items():
        per = out.get(key)
        if per is None:
            per = out[key] = Counter()
        per[b] += c
    return out
