"""The results of a run: rates over a short last interval, and a results folder reads back equal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim.des import simulate
from sim.results import Results
from sim.scenario import parse_scenario


def _run(duration_s: float, interval_s: float) -> Results:
    return simulate(parse_scenario({
        "name": "p", "run": {"duration_s": duration_s, "interval_s": interval_s, "seed": 2},
        "arrivals": {"rate_per_s": 10},
        "workload": {"classes": {"job": {"probability": 1, "stages": [{"tool": "t"}]}}},
        "services": {"tools": {"t": {"concurrency": 100, "latency": {"type": "constant", "value": 1.0}}}},
    }))


def test_a_short_last_interval_does_not_dilute_rates() -> None:
    r = _run(100, 30)  # intervals of 30 s, the last one 10 s long
    assert r.meta["n_intervals"] == 4 and r.summary["window_s"] == 100
    assert r.summary["throughput_per_s"] == pytest.approx(10, rel=0.1)
    # L = lambda x 1 s = 10 calls present on average, in the short interval too
    assert r.series["occupancy:t"] == pytest.approx([10] * 4, rel=0.25)


def test_results_folder_reads_back(tmp_path: Path) -> None:
    r = _run(60, 10)
    back = Results.read(r.write(tmp_path / "run"))
    assert back.meta == r.meta
    assert back.series.keys() == r.series.keys()
    for k, v in r.series.items():
        assert np.allclose(back.series[k], v, rtol=1e-9), k
    for k, h in r.histograms.items():
        assert np.array_equal(back.histograms[k], h), k
    assert back.summary["completed"] == r.summary["completed"]
