"""Log histograms: every quantile within 1% of the exact sample quantile; merging is exact."""

from __future__ import annotations

import numpy as np
import pytest

from sim.results import GAMMA, IntervalHistogram, LogHistogram, window_histogram


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_within_one_percent(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.lognormal(0, 2, 50_000), rng.exponential(1e-3, 1000), [1e-12, 0.0, 5e4]])
    h = LogHistogram()
    for v in x.tolist():
        h.record(v)
    s = np.sort(x)
    for q in (0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999):
        exact = s[max(1, int(np.ceil(q * len(s)))) - 1]  # the ceil(q n)-th value
        if exact <= 1e-9:
            continue  # values at or below MIN_VALUE share the lowest bucket
        assert abs(h.quantile(q) - exact) <= (GAMMA - 1) / (GAMMA + 1) * exact * (1 + 1e-9), q
    assert h.n == len(x) and h.hi == x.max() and h.lo == x.min()
    assert h.mean == pytest.approx(x.mean())


def test_merge_is_exact() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.exponential(1, 5000), rng.lognormal(0, 1, 7000)
    ha, hb, hab = LogHistogram(), LogHistogram(), LogHistogram()
    for v in a.tolist():
        ha.record(v)
        hab.record(v)
    for v in b.tolist():
        hb.record(v)
        hab.record(v)
    ha.merge(hb)
    assert ha.counts == hab.counts and ha.n == hab.n
    assert ha.quantile(0.99) == hab.quantile(0.99)


def test_interval_histogram_keeps_intervals_apart() -> None:
    h = IntervalHistogram(10.0)
    for t, v in [(1, 0.5), (2, 0.5), (15, 2.0), (3, 0.5), (25, 4.0)]:  # one record goes back in time
        h.record(float(t), v)
    rows = h.triples()
    per_interval = {int(i): int(c) for i, _, c in rows}
    assert per_interval == {0: 3, 1: 1, 2: 1}
    assert window_histogram(rows, 1).n == 2
    assert window_histogram(rows, 0).quantile(0.5) == pytest.approx(0.5, rel=0.01)
