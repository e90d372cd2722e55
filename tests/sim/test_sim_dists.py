"""Distributions: sample mean and variance agree with `mean` and `variance` (99.9% intervals
from the samples themselves), the repr reads like the YAML that made it, and Sampler draws
are the distribution's own draws."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from pydantic import TypeAdapter

from sim.dists import Constant, Distribution, Empirical, Sampler, sampler

DIST: TypeAdapter = TypeAdapter(Distribution)  # type: ignore[type-arg]
Z = 3.29  # two-sided 99.9%: with 12 cases x 2 checks a false alarm is rare even on reseeding
N = 400_000

CASES = [
    {"type": "constant", "value": 2.5},
    {"type": "exponential", "mean": 0.125},
    {"type": "exponential", "rate": 8.0},
    {"type": "uniform", "low": 1.0, "high": 3.0},
    {"type": "lognormal", "mean": 600.0, "cv": 0.8},
    {"type": "gamma", "mean": 3.0, "cv": 0.8},
    {"type": "gamma", "mean": 1.0, "cv": 2.0},
    {"type": "weibull", "shape": 1.5, "scale": 2.0},
    {"type": "weibull", "shape": 0.7, "scale": 1.0},
    {"type": "pareto", "shape": 5.0, "scale": 1.0},
    {"type": "mixture", "components": [{"weight": 0.7, "dist": {"type": "exponential", "mean": 1.0}},
                                       {"weight": 0.3, "dist": {"type": "constant", "value": 10.0}}]},
]


@pytest.mark.parametrize("spec", CASES, ids=lambda s: s["type"] + ":" + ",".join(f"{k}={v}" for k, v in s.items() if k not in ("type", "components")))
def test_sample_mean_and_variance_match(spec: dict) -> None:  # type: ignore[type-arg]
    d = DIST.validate_python(spec)
    x = d.sample_n(np.random.default_rng(11), N)
    assert (x >= 0).all()
    m, v = x.mean(), x.var(ddof=1)
    if d.variance == 0:
        assert m == d.mean and v == 0
        return
    assert abs(m - d.mean) <= Z * math.sqrt(v / N), (m, d.mean)
    # the variance of the sample variance is (m4 - v^2) / n
    m4 = ((x - m) ** 4).mean()
    assert abs(v - d.variance) <= Z * math.sqrt((m4 - v * v) / N), (v, d.variance)


def test_empirical_from_the_shipped_trace() -> None:
    from sim_helpers import ROOT

    d = DIST.validate_python({"type": "empirical", "file": "data/servegen_m-small_rate_10min.csv",
                              "column": _first_numeric_column(ROOT / "scenarios" / "data" / "servegen_m-small_rate_10min.csv")},
                             context={"base_dir": str(ROOT / "scenarios")})
    assert isinstance(d, Empirical) and len(d.values) > 10
    x = d.sample_n(np.random.default_rng(3), N)
    assert set(np.unique(x)) <= set(d.values)
    assert abs(x.mean() - d.mean) <= Z * math.sqrt(d.variance / N) + 1e-12


def _first_numeric_column(path) -> str:  # type: ignore[no-untyped-def]
    import csv

    with open(path, newline="") as f:
        row = next(csv.DictReader(f))
    for k, v in row.items():
        try:
            float(v)
            return k
        except ValueError:
            continue
    raise AssertionError("no numeric column")


def test_heavy_tails_report_infinite_moments() -> None:
    assert DIST.validate_python({"type": "pareto", "shape": 1.0, "scale": 1.0}).mean == math.inf
    assert DIST.validate_python({"type": "pareto", "shape": 1.5, "scale": 1.0}).variance == math.inf


_REPR = re.compile(r"^([A-Za-z]+)\((.*)\)$")


@pytest.mark.parametrize("spec", [c for c in CASES if c["type"] != "mixture"], ids=lambda s: s["type"])
def test_repr_reads_like_yaml(spec: dict) -> None:  # type: ignore[type-arg]
    """`Exponential(mean=0.125)` is `{type: exponential, mean: 0.125}`: the repr round-trips."""
    d = DIST.validate_python(spec)
    m = _REPR.match(repr(d))
    assert m, repr(d)
    fields = dict(kv.split("=") for kv in m.group(2).split(", "))
    back = {"type": m.group(1).lower(), **{k: float(v) for k, v in fields.items()}}
    assert back == {k: float(v) if k != "type" else v for k, v in spec.items()}
    assert DIST.validate_python(back) == d
    assert str(d) == repr(d)


def test_mixture_repr_names_weights_and_components() -> None:
    d = DIST.validate_python(CASES[-1])
    assert repr(d) == "Mixture(0.7: Exponential(mean=1.0), 0.3: Constant(value=10.0))"


def test_sampler_draws_are_the_distributions_draws() -> None:
    d = DIST.validate_python({"type": "lognormal", "mean": 2.0, "cv": 0.5})
    s = Sampler(d, np.random.default_rng(5), block=64)
    got = [s() for _ in range(200)]
    rng = np.random.default_rng(5)
    want = np.concatenate([d.sample_n(rng, 64) for _ in range(4)])[:200]
    assert np.allclose(got, want)
    assert sampler(None, np.random.default_rng(0))() == 0.0
    assert sampler(Constant(value=3.0), np.random.default_rng(0))() == 3.0
