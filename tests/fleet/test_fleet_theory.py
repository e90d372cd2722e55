"""The fleet engine on the queueing-theory cases (scenarios/validation), 10 replications as one
batch: the 95% interval over replications must cover theory (Erlang C, M/M/1/K, retry
amplification). A time-stepped engine resolves a step, not an instant; arrivals and departures
within one step are ordered at random (`Pool.advance`: half the slots freed in a step open
after its arrivals), without which P(wait) and P(block) came out ~5% low. Measured at 30
replications: M/M/3 P(wait) 0.439 [0.429, 0.449] for 0.444, M/M/1/3 P(block) 0.106 [0.103,
0.109] for 0.108 (docs/fleet.md)."""

from __future__ import annotations

import pytest
from fleet_helpers import Window, ci, fleet_replicate, scenario

pytestmark = [pytest.mark.theory, pytest.mark.slow, pytest.mark.timeout(900)]
REPS = 10


def _check(res: dict[str, list[float]], theory: dict[str, float]) -> None:
    bad = []
    for key, want in theory.items():
        c = ci(res[key])
        ok = c["low"] <= want <= c["high"]
        print(f"{key}: fleet {c['mean']:.4g} [{c['low']:.4g}, {c['high']:.4g}], theory {want:.4g} "
              f"({c['mean'] / want - 1:+.1%})")
        if not ok:
            bad.append(key)
    assert not bad, bad


def _station(w: Window, svc: str) -> dict[str, float]:
    g = w.total(f"granted:{svc}")
    return {"Wq": w.total(f"wait_s:{svc}") / g, "P(wait)": w.total(f"waited:{svc}") / g,
            "W": w.total(f"time_s:{svc}") / w.total(f"served:{svc}"), "e2e": w.hist_mean("e2e:job")}


def test_mmc_erlang_c() -> None:
    lam, mu, c = 0.2, 0.1, 3
    a, rho = lam / mu, lam / mu / c
    tail = a**c / 6 / (1 - rho)
    p_wait = tail / (1 + a + a**2 / 2 + tail)
    wq = p_wait / (c * mu - lam)
    res = fleet_replicate(scenario("validation/mmc3.yaml", "run.duration_s=6000", "run.warmup_s=1000"), REPS,
                          lambda w: _station(w, "server"))
    _check(res, {"P(wait)": p_wait, "Wq": wq, "W": wq + 1 / mu})
    assert ci(res["e2e"])["mean"] == pytest.approx(ci(res["W"])["mean"], rel=0.03)


def test_mm1k_blocking() -> None:
    rho, k = 5 / 8, 3
    p_block = (1 - rho) * rho**k / (1 - rho ** (k + 1))
    res = fleet_replicate(scenario("validation/mm1k.yaml", "run.duration_s=320", "run.warmup_s=40", "run.interval_s=40"), REPS,
                          lambda w: {"P(block)": w.total("failed:job:shed") / w.total("arrived:job")})
    _check(res, {"P(block)": p_block})


def test_retry_amplification() -> None:
    f = 0.5
    # attempts per command do not depend on the service time: 0.2 s instead of 0.01 s keeps the step coarse
    sc = scenario("validation/retry.yaml", "run.duration_s=200", "services.tools.flaky.latency.value=0.5")
    res = fleet_replicate(sc, REPS,
                          lambda w: {"attempts": w.total("attempts:job") / w.total("arrived:job")})
    _check(res, {"attempts": 1 + f + f**2 + f**3})
