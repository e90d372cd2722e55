"""The launch mechanism (population.launch): its arrival curves against their closed forms, the
simulated users against the expectation of sim/campaign/launch.py, and decisions that do not
depend on how fast the stack serves them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.arrivals import DAY_S, BroadcastCurve, DailyProfile, poisson_times
from sim.campaign.launch import expected_launch_day, pool_for_dau, with_pool
from sim.campaign.launch_check import cell, day_rows
from sim.des import simulate
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
FESTIVAL = ROOT / "scenarios" / "spring_festival.yaml"
FEB6 = ROOT / "scenarios" / "feb6_launch.yaml"


def _launch():  # type: ignore[no-untyped-def]
    sc = load_scenario(FESTIVAL)
    assert sc.population and sc.population.launch
    return sc, sc.population.launch


def test_daily_profile_integrates_to_a_day_and_inverts() -> None:
    _, launch = _launch()
    prof = DailyProfile(launch.activity, start_hour=3.5)
    assert math.isclose(float(prof.elapsed(5 * DAY_S)), 5 * DAY_S, rel_tol=1e-9)
    t = np.array([10.0, 4_000.0, 50_000.0, 200_000.0])
    for d in (1.0, 3_600.0, 90_000.0):
        back = prof.elapsed(prof.advance(0.0, prof.elapsed(t) + d))
        assert np.allclose(back, prof.elapsed(t) + d, atol=1e-6)
    assert prof.day_start(10.0) == -3.5 * 3600 and math.isclose(prof.mass_after(prof.day_start(10.0)), 1.0)


def test_session_times_follow_the_profile_hour_by_hour() -> None:
    """20,000 times from one clock day: each hour's share within a 99.9% binomial interval of its
    mass under the interpolated profile."""
    sc, _ = _launch()
    assert sc.population
    prof = DailyProfile(sc.population.diurnal or (1.0,) * 24)
    n = 20_000
    times = prof.sample_day(np.random.default_rng(5), n, 0.0)
    assert times.min() >= 0 and times.max() < DAY_S
    counts = np.bincount((times // 3600).astype(int), minlength=24)
    mass = np.diff(prof.elapsed(np.arange(25) * 3600.0)) / DAY_S
    half = 3.29 * np.sqrt(mass * (1 - mass) / n)
    assert np.all(np.abs(counts / n - mass) <= half), (counts / n - mass) / half


def test_broadcast_bound_holds_and_its_integral_is_the_closed_form() -> None:
    _, launch = _launch()
    prof = DailyProfile(launch.activity)
    curve = BroadcastCurve(launch, prof, 1.0)
    rng = np.random.default_rng(2)
    for t0 in rng.uniform(launch.at_s - 3_600, launch.at_s + 5 * DAY_S, 300):
        t = np.linspace(t0, t0 + 60.0, 61)
        assert curve(t).max() <= curve.max_over(t0, t0 + 60.0) * (1 + 1e-9)
    grid = np.linspace(launch.at_s, launch.at_s + 2 * DAY_S, 400_001)
    r = curve(grid)
    numeric = float(np.sum((r[1:] + r[:-1]) / 2 * np.diff(grid)))
    assert math.isclose(numeric, float(curve.joined(grid[-1])), rel_tol=1e-4)


def test_thinned_broadcast_arrivals_count_what_the_curve_integrates() -> None:
    """Poisson by thinning on the launch curve: the day's count within 4 sigma of its mean."""
    _, launch = _launch()
    curve = BroadcastCurve(launch, DailyProfile(launch.activity), 1e-3)
    horizon = launch.at_s + DAY_S
    times = np.concatenate(list(poisson_times(curve, horizon, np.random.default_rng(11))))
    mean = float(curve.joined(horizon))
    assert abs(len(times) - mean) <= 4 * math.sqrt(mean) and times.min() >= launch.at_s


def test_feb6_population_is_the_calibrated_one() -> None:
    a, b = load_scenario(FESTIVAL).population, load_scenario(FEB6).population
    assert a and b and a.launch and b.launch
    assert a.launch.model_copy(update={"at_s": 0.0}) == b.launch
    assert a.model_copy(update={"launch": None, "scale": 1.0}) == b.model_copy(update={"launch": None, "scale": 1.0})
    assert load_scenario(FESTIVAL).workload == load_scenario(FEB6).workload


def test_the_pool_is_calibrated_to_the_published_launch_day_dau() -> None:
    sc, launch = _launch()
    assert abs(expected_launch_day(sc).dau / 58.48e6 - 1) < 0.002
    pool = pool_for_dau(sc, 70e6)
    assert math.isclose(expected_launch_day(with_pool(sc, pool)).dau, 70e6, rel_tol=1e-6)


@pytest.mark.slow
def test_simulated_launch_day_agrees_with_the_expectation() -> None:
    """Six demand-only cells of the launch day (2e-5 of the users, ~1,200 each): the mean DAU,
    new users and invited friends within 3 standard errors of the expectation."""
    got = []
    for seed in range(6):
        sc = cell(FEB6, [f"run.seed={seed}"], 2e-5, demand_only=True)
        d = day_rows(sc, simulate(sc))[0]
        got.append((d["dau"], d["new_users"], d["invited"]))
    exp = expected_launch_day(sc)
    want = (exp.dau, float(exp.new_users.sum()), float(exp.invited.sum()))
    g = np.array(got)
    se = g.std(axis=0, ddof=1) / math.sqrt(len(g))
    assert np.all(np.abs(g.mean(axis=0) - want) <= 3 * se + 0.01 * np.array(want)), (g.mean(axis=0), want, se)


def test_users_decide_the_same_with_and_without_decode() -> None:
    """Each user draws from their own stream, so a demand-only cell and the full one (decode,
    queueing) have the same users and nearly the same orders (only sessions that straddle the
    end of the run can differ)."""
    sets = ["run.duration_s=43200"]
    fast = cell(FEB6, sets, 1e-5, demand_only=True)
    full = cell(FEB6, sets, 1e-5, demand_only=False)
    a, b = simulate(fast).series, simulate(full).series
    for name in ("users_new:broadcast", "users_new:invited", "registrations", "invitations"):
        assert a[name].sum() == b[name].sum(), name
    assert a["orders"].sum() > 50
    assert abs(a["orders"].sum() - b["orders"].sum()) <= 0.02 * a["orders"].sum()


@pytest.mark.parametrize("exactly_once", [True, False])
def test_a_payment_retried_after_a_timeout_charges_twice_only_without_exactly_once(exactly_once: bool) -> None:
    """Every attempt pays, then waits on a slow confirmation past the client's timeout: the app
    retries (the server keeps going), so without idempotency each retry charges again."""
    from sim.scenario import parse_scenario

    slow = {"type": "constant", "value": 5.0}
    data = {
        "name": "pay", "run": {"duration_s": 600, "interval_s": 60, "seed": 1},
        "arrivals": {"rate_per_s": 0.2},
        "workload": {"classes": {"buy": {
            "probability": 1.0, "places_order": True,
            "funnel": {"convert_with_card": 1.0, "convert_without_card": 1.0, "exactly_once": exactly_once},
            "stages": [{"tool": "order"}, {"tool": "payment"}, {"tool": "confirm"}]}}},
        "clients": {"timeout_s": 2, "max_attempts": 3, "backoff": {"base_s": 0, "cap_s": 0}},
        "services": {"tools": {"order": {}, "payment": {}, "confirm": {"latency": slow, "concurrency": 1000}}},
    }
    s = simulate(parse_scenario(data)).summary
    assert s["orders"] == 0 and s["orders_attempted"] > 50
    if exactly_once:
        assert s["payments_duplicated"] == 0 and s["payments"] == s["orders_attempted"]
    else:
        assert s["payments_duplicated"] >= s["orders_attempted"] * 1.5  # three charges each, less the run's end
    assert s["orders_failed_after_payment"] >= 0.9 * s["orders_attempted"]
