"""The DAU-list campaign path against the published figures (fast: the expectation is exact, the
simulated cell is demand-only and small). `spring_festival.yaml` itself is a launch mechanism
now (tests/campaign/test_campaign_launch.py); its DAU-list predecessor is kept in data/."""

from __future__ import annotations

import math
from pathlib import Path

from sim.campaign.calibration import (
    PUBLISHED,
    commands_per_session_mean,
    demand_only_overrides,
    diurnal_profile,
    expected_totals,
    invitation_growth,
    launch_dau,
    launch_downloads,
    simulated_totals,
)
from sim.campaign.overlay import load_with_overlay
from sim.des import simulate
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
FESTIVAL = Path(__file__).parent / "data" / "spring_festival_dau_list.yaml"
RATES = ROOT / "scenarios" / "data" / "servegen_m-small_rate_10min.csv"


def test_expected_totals_match_published_within_5_percent() -> None:
    exp = expected_totals(load_scenario(FESTIVAL)).as_dict()
    for key, published in PUBLISHED.items():
        assert abs(exp[key] / published - 1) < 0.05, (key, exp[key], published)


def test_yaml_numbers_are_the_documented_models() -> None:
    sc = load_scenario(FESTIVAL)
    assert sc.population and sc.population.campaign
    dau = invitation_growth(7.07e6, 58.48e6, 6, retention=0.8, invite_r=0.5)
    assert all(abs(a - b) <= 5e3 for a, b in zip(sc.population.campaign.daily_active_users, dau, strict=True))
    assert sc.population.diurnal == tuple(diurnal_profile(RATES))
    assert abs(commands_per_session_mean(sc.population.commands_per_session) - 3.071) < 0.005
    launch = load_scenario(ROOT / "scenarios" / "spring_festival.yaml").population
    assert launch and launch.launch and launch.diurnal == sc.population.diurnal
    assert launch.launch.activity == tuple(diurnal_profile(RATES, meals={}))
    for name in ("feb8_outage", "steady_day", "launch_week", "feb6_launch"):
        other = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        assert other.population and other.population.diurnal and len(other.population.diurnal) == 24


def test_launch_week_reaches_10_million_downloads() -> None:
    downloads = launch_downloads(10e6, 7, 1.3)
    assert abs(sum(downloads) - 10e6) < 1
    sc = load_scenario(ROOT / "scenarios" / "launch_week.yaml")
    assert sc.population and sc.population.campaign
    want = launch_dau(1e5, downloads, activation=0.8, retention=0.5)
    assert all(abs(a - b) <= 5e3 for a, b in zip(sc.population.campaign.daily_active_users, want, strict=True))


def test_simulated_cell_scaled_up_matches_published() -> None:
    """A 2e-5 demand-only cell (~80,000 commands): each total within 5% of the published figure,
    or within 3 standard errors of the cell's sampling noise where that is wider."""
    base = load_with_overlay(FESTIVAL, None, ["population.scale=2e-5"])
    sc = load_with_overlay(FESTIVAL, None, ["population.scale=2e-5", *demand_only_overrides(base)])
    val, err = simulated_totals(sc, simulate(sc))
    for key, published in PUBLISHED.items():
        got, se = getattr(val, key), getattr(err, key)
        assert abs(got - published) <= max(0.05 * published, 3 * se), (key, got, published, se)
        assert math.isfinite(got) and got > 0
