"""Arrival processes: the non-homogeneous Poisson process by thinning has the right count in
every window and is Poisson (time-changed gaps are Exp(1)); renewal processes have the asked
inter-arrival CV and follow the rate curve; traces replay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.arrivals import RateCurve, arrival_blocks, poisson_times, renewal_times
from sim.scenario import parse_scenario

DIURNAL = (0.3, 0.2, 0.15, 0.1, 0.1, 0.15, 0.3, 0.6, 0.9, 1.0, 1.1, 1.2,
           1.3, 1.2, 1.1, 1.0, 1.0, 1.1, 1.4, 1.6, 1.5, 1.2, 0.8, 0.5)
CHI2_24_999 = 51.18  # 99.9% quantile of chi-square with 24 degrees of freedom


def _curve(base: float = 0.5, start_hour: float = 0.0) -> RateCurve:
    m = sum(DIURNAL) / 24
    return RateCurve(base, start_hour, tuple(w / m for w in DIURNAL))


def _integral(curve: RateCurve, t0: float, t1: float, n: int = 2001) -> float:
    t = np.linspace(t0, t1, n)
    r = curve(t)
    return float(((r[1:] + r[:-1]) / 2 * np.diff(t)).sum())


def test_nhpp_counts_per_hour_match_the_integral_of_the_rate() -> None:
    curve = _curve(base=0.5, start_hour=5.5)
    times = np.concatenate(list(poisson_times(curve, 86_400.0, np.random.default_rng(1))))
    assert (np.diff(times) >= 0).all() and times[0] >= 0 and times[-1] < 86_400
    counts = np.histogram(times, bins=np.arange(25) * 3600.0)[0]
    expected = np.array([_integral(curve, h * 3600.0, (h + 1) * 3600.0) for h in range(24)])
    z2 = (counts - expected) ** 2 / expected  # each count is Poisson(expected)
    assert z2.sum() < CHI2_24_999, (counts, expected.round())
    assert counts.sum() == pytest.approx(expected.sum(), rel=4 / math.sqrt(expected.sum()))


def test_thinning_gives_a_poisson_process() -> None:
    """Time-changed by the integrated rate, an NHPP is a unit-rate Poisson process: gaps Exp(1)."""
    curve = _curve(base=1.0)
    times = np.concatenate(list(poisson_times(curve, 86_400.0, np.random.default_rng(2))))
    grid, cum = curve.integral(86_400.0, step_s=10.0)
    gaps = np.diff(np.interp(times, grid, cum))
    n = len(gaps)
    assert abs(gaps.mean() - 1) < 4 / math.sqrt(n)
    assert abs(gaps.std() - 1) < 4 * math.sqrt(2 / n) + 0.005
    # P(gap > 1) = e^-1 for Exp(1)
    assert abs((gaps > 1).mean() - math.exp(-1)) < 4 * math.sqrt(0.25 / n)


def test_rate_curve_max_over_bounds_the_curve() -> None:
    curve = _curve(base=2.0, start_hour=3.2)
    rng = np.random.default_rng(0)
    for t0 in rng.uniform(0, 86_400, 50):
        t1 = t0 + 60.0
        inside = curve(np.linspace(t0, t1, 500))
        assert curve.max_over(t0, t1) >= inside.max() - 1e-12


@pytest.mark.parametrize("kind", ["gamma", "weibull"])
@pytest.mark.parametrize("cv", [0.5, 2.0])
def test_renewal_gaps_have_the_asked_cv_and_rate(kind: str, cv: float) -> None:
    rate = 4.0
    times = np.concatenate(list(renewal_times(RateCurve(rate), 50_000.0, np.random.default_rng(3), kind, cv)))
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.02 * cv + 0.005)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.03)


def test_renewal_follows_the_rate_curve() -> None:
    curve = _curve(base=1.0)
    times = np.concatenate(list(renewal_times(curve, 86_400.0, np.random.default_rng(4), "gamma", 2.0)))
    counts = np.histogram(times, bins=np.arange(25) * 3600.0)[0]
    expected = np.array([_integral(curve, h * 3600.0, (h + 1) * 3600.0) for h in range(24)])
    # bursty (cv 2): the count variance is about cv^2 times Poisson's
    assert (np.abs(counts - expected) < 5 * 2.0 * np.sqrt(expected)).all()


def test_trace_replay_scaled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "trace.csv").write_text("ts,prompt\n10.0,5\n10.5,6\n12.0,7\n11.0,8\n")
    sc = parse_scenario({
        "name": "trace", "run": {"duration_s": 10, "interval_s": 1},
        "arrivals": {"process": "trace", "scale": 2.0,
                     "trace": {"file": "trace.csv", "time_column": "ts", "prompt_column": "prompt"}},
        "workload": {"classes": {"job": {"probability": 1, "stages": [{"tool": "t"}]}}},
        "services": {"tools": {"t": {}}},
    }, base_dir=tmp_path)
    times = np.concatenate(list(arrival_blocks(sc, np.random.default_rng(0), tmp_path)))
    assert times.tolist() == [0.0, 0.25, 0.5, 1.0]  # sorted, from the first row, twice as fast
