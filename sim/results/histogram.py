"""Mergeable log-bucketed latency histograms (at most 1% relative error on any quantile).

Bucket b holds values in [GAMMA**b, GAMMA**(b+1)); it reports 2*GAMMA**(b+1)/(1+GAMMA), the
value with equal relative error (GAMMA-1)/(GAMMA+1) = 0.99% to both edges. Merging is adding
counts bucket by bucket, so histograms from replications, intervals or Locust workers merge exactly.
"""

from __future__ import annotations

import math

import numpy as np

GAMMA = 1.02
_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
MIN_VALUE = 1e-9  # values at or below (e.g. zero) land in the lowest bucket
_MIN_BUCKET = math.floor(math.log(MIN_VALUE) * _INV_LOG_GAMMA)


def bucket_of(x: float) -> int:
    """Bucket index of a value in seconds (or any positive unit)."""
    return math.floor(math.log(x) * _INV_LOG_GAMMA) if x > MIN_VALUE else _MIN_BUCKET


def bucket_value(b: np.ndarray | int) -> np.ndarray | float:
    """The representative value of bucket(s) b."""
    return 2.0 * np.power(GAMMA, np.asarray(b) + 1.0) / (1.0 + GAMMA)


class LogHistogram:
    """Counts per log bucket plus exact count, sum, min and max."""

    __slots__ = ("counts", "n", "total", "lo", "hi")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.n = 0
        self.total = 0.0
        self.lo = math.inf
        self.hi = -math.inf

    def record(self, x: float) -> None:
        b = math.floor(math.log(x) * _INV_LOG_GAMMA) if x > MIN_VALUE else _MIN_BUCKET
        c = self.counts
        c[b] = c.get(b, 0) + 1
        self.n += 1
        self.total += x
        if x < self.lo:
            self.lo = x
        if x > self.hi:
            self.hi = x

    def merge(self, other: LogHistogram) -> LogHistogram:
        for b, k in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + k
        self.n += other.n
        self.total += other.total
        self.lo = min(self.lo, other.lo)
        self.hi = max(self.hi, other.hi)
        return self

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    def quantile(self, q: float) -> float:
        return quantile_from_counts(self.counts, q, self.lo, self.hi)

    @classmethod
    def from_arrays(cls, buckets: np.ndarray, counts: np.ndarray) -> LogHistogram:
        h = cls()
        for b, k in zip(buckets.tolist(), counts.tolist(), strict=True):
            h.counts[b] = h.counts.get(b, 0) + k
        h.n = int(counts.sum())
        h.total = float((bucket_value(buckets) * counts).sum())
        if h.n:
            h.lo, h.hi = float(bucket_value(buckets.min())), float(bucket_value(buckets.max()))
        return h


def quantile_from_counts(counts: dict[int, int], q: float, lo: float = 0.0, hi: float = math.inf) -> float:
    """The q-quantile (0..1) of a bucket->count map: the bucket holding the ceil(q*n)-th value."""
    n = sum(counts.values())
    if n == 0:
        return math.nan
    rank = max(1, math.ceil(q * n))
    seen = 0
    for b in sorted(counts):
        seen += counts[b]
        if seen >= rank:
            return float(min(max(float(bucket_value(b)), lo), hi))
    return hi
