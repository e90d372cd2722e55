"""Per-interval quantiles from histograms agree with LogHistogram's own quantile rule."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from reports.timeseries import fault_windows, interval_quantiles
from sim.results import Recorder, Results, window_histogram


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.floats(1e-4, 1e3)), min_size=1, max_size=200))
def test_interval_quantiles_match_log_histogram(samples: list[tuple[int, float]]) -> None:
    rec = Recorder(50, 10, ["c"])
    h = rec.hist("e2e", "c")
    for i, x in sorted(samples):
        h.record(i * 10 + 5, x)
    triples = h.triples()
    q = interval_quantiles(triples, 5, (0.5, 0.99))
    for i in range(5):
        rows = triples[triples[:, 0] == i]
        if not len(rows):
            assert np.isnan(q[:, i]).all()
            continue
        ref = window_histogram(rows, 0)
        ref.lo, ref.hi = 0.0, np.inf  # compare bucket values, without the clamp to the exact range
        assert q[0, i] == ref.quantile(0.5) and q[1, i] == ref.quantile(0.99)


def test_fault_windows_from_events() -> None:
    rec = Recorder(100, 10, ["c"])
    rec.event(20, "fault_start", "llm", fault_kind="slowdown", magnitude=3.0, duration_s=30)
    rec.event(60, "fault_start", "auth", fault_kind="outage")
    rec.event(80, "fault_end", "auth", fault_kind="outage")
    w = fault_windows(Results.from_recorder(rec, {"source": "t"}))
    assert [(x.start_s, x.end_s, x.label) for x in w] == [(20, 50, "slowdown ×3 on llm"), (60, 80, "outage on auth")]
