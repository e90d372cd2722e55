"""The launch mechanism in expectation: who opens the app, and when, on the launch day.

For a scenario with `population.launch` this computes, without simulating, the expected number
of users who join in each minute of the launch day (clock day starting at `launch.at_s`):

- people reached from outside the app: `BroadcastCurve.joined` (closed form);
- users who had the app: each is active that day with probability `active_without_cards` and
  joins the campaign at their first session; with n = 1 + K sessions, K ~ Poisson(lambda), at
  times of density f (CDF F), the first session has density f(t) e^(-lambda F) (1 + lambda (1 - F));
- friends: every joiner's accepted invitations (mean E[accepted_per_user]) arrive after a delay
  in phone-activity time, so in activity time tau the joins obey a renewal equation
  j(tau) = b(tau) + e(tau) + R (g * j)(tau), g the delay density; solved on a one-minute grid.

It assumes every registration succeeds (as in a cell provisioned for demand). Everything is
linear in `broadcast.pool_users`, which `pool_for_dau` uses to calibrate the pool to a
published DAU for the launch day. The simulated cell must agree with this within its sampling
error (tests/campaign/test_campaign_launch.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.arrivals import DAY_S, BroadcastCurve, DailyProfile, first_session_cdf
from sim.scenario import Scenario

_FLAT = (1.0,) * 24
_STEP_S = 60.0
PUBLISHED_DAU_LAUNCH, PUBLISHED_COMMANDS, PUBLISHED_ORDERS = 58.48e6, 4.1e9, 120e6  # 6 Feb; 6-11 Feb


@dataclass(frozen=True)
class LaunchDay:
    """Expected joins over the launch day at full scale, per minute from `launch.at_s`."""

    t_s: np.ndarray  # start of each minute (simulated seconds)
    broadcast: np.ndarray  # joins reached from outside the app
    invited: np.ndarray  # friends who accepted an invitation
    existing_joined: np.ndarray  # users who had the app, at their first session after the launch
    existing_active: float  # users who had the app and open it that day

    @property
    def new_users(self) -> np.ndarray:
        return self.broadcast + self.invited

    @property
    def dau(self) -> float:
        """Expected daily active users on the launch day: everyone who opens the app."""
        return self.existing_active + float(self.new_users.sum())

    def hourly(self, series: np.ndarray) -> np.ndarray:
        return series.reshape(24, -1).sum(axis=1)


def expected_launch_day(sc: Scenario) -> LaunchDay:
    """Expected joins on the launch day (full scale), see the module docstring."""
    p = sc.population
    if p is None or p.launch is None:
        raise ValueError("the scenario has no population.launch")
    L = p.launch
    shape = DailyProfile(p.diurnal or _FLAT, sc.run.start_hour)
    activity = DailyProfile(L.activity or p.diurnal or _FLAT, sc.run.start_hour)
    t = L.at_s + np.arange(0.0, DAY_S + _STEP_S / 2, _STEP_S)
    b = np.diff(BroadcastCurve(L, activity, 1.0).joined(t))
    active = p.daily_active_users  # existing users x active_without_cards
    lam = p.sessions_per_user_per_day - 1.0
    frac = (shape.elapsed(t) - shape.elapsed(shape.day_start(L.at_s))) / DAY_S  # F(t) in the clock day
    e = active * np.diff(first_session_cdf(frac, lam))
    tau = activity.elapsed(t) - activity.elapsed(L.at_s)
    invited = _renewal(b + e, tau, L.invitations.accepted_per_user.mean, L.invitations.delay_s)
    return LaunchDay(t[:-1], b, invited, e, active)


def _renewal(source: np.ndarray, tau: np.ndarray, r: float, delay) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Friends arriving in each minute. The joins J_k of minute k (source and friends) bring r
    friends each, spread over minutes k, k+1, ... by the delay's distribution in activity time
    (joins sit at their minute's midpoint): J_k = S_k + sum_{m<k} r J_m w_mk + r J_k w_kk."""
    n = len(source)
    mid = (tau[:-1] + tau[1:]) / 2
    cdf = _delay_cdf(delay)
    joins = np.zeros(n)
    from_earlier = np.zeros(n)
    for k in range(n):
        spread = np.diff(np.concatenate([[0.0], cdf(tau[k + 1:] - mid[k])]))  # minutes k .. n-1
        joins[k] = (source[k] + from_earlier[k]) / (1.0 - r * spread[0])
        from_earlier[k + 1:] += r * joins[k] * spread[1:]
    return joins - source


def _delay_cdf(delay):  # type: ignore[no-untyped-def]
    """The delay distribution's CDF (exact for exponential and constant, else from 200,000 draws)."""
    if delay.type == "exponential":
        m = delay.mean
        return lambda x: np.where(x > 0, 1 - np.exp(-np.maximum(x, 0) / m), 0.0)
    if delay.type == "constant":
        v = delay.value
        return lambda x: (x >= v).astype(float)
    draws = np.sort(delay.sample_n(np.random.default_rng(20260206), 200_000))
    return lambda x: np.searchsorted(draws, x, side="right") / len(draws)


def with_pool(sc: Scenario, pool_users: float) -> Scenario:
    """The scenario with `population.launch.broadcast.pool_users` replaced."""
    p = sc.population
    assert p is not None and p.launch is not None
    b = p.launch.broadcast.model_copy(update={"pool_users": pool_users})
    return sc.model_copy(update={"population": p.model_copy(update={"launch": p.launch.model_copy(
        update={"broadcast": b})})})


def pool_for_dau(sc: Scenario, dau: float) -> float:
    """The `broadcast.pool_users` that makes the expected launch-day DAU equal `dau`: the DAU is
    linear in the pool, so two evaluations give it."""
    p = sc.population
    assert p is not None and p.launch is not None
    pool = p.launch.broadcast.pool_users
    at_pool = expected_launch_day(sc).dau
    at_zero = expected_launch_day(with_pool(sc, pool * 1e-9)).dau
    if at_pool <= at_zero:
        raise ValueError("the launch day's DAU does not grow with the pool")
    return pool * (dau - at_zero) / (at_pool - at_zero)


def calibrate(path: str | Path, overrides: list[str] | tuple[str, ...] = (), cell_scale: float = 5e-5,
              rounds: int = 6, progress: Callable[[float], None] | None = None) -> list[dict[str, float]]:
    """Calibrate a launch scenario to the published launch-day DAU, commands and orders.

    `broadcast.pool_users` comes from the expectation (exact: the launch day's DAU is linear in
    it). `sessions_per_user_per_day` and `first_session.try_share` are found together by Newton's
    method in log space on demand-only cells (the same seed every run, so the differences are
    not noise): a finite-difference Jacobian from two extra cells, then Broyden updates. The two
    are coupled: a card not spent on the first try keeps its user coming back
    (`active_with_cards`), so a lower try share raises commands. Returns one row per cell run;
    the last row is the calibration."""
    from sim.campaign.launch_check import cell

    sets = list(overrides)
    sc = cell(path, sets, cell_scale, demand_only=True)
    p = sc.population
    assert p is not None and p.launch is not None and p.launch.first_session is not None
    x = np.log([p.sessions_per_user_per_day, p.launch.first_session.try_share])
    rows: list[dict[str, float]] = []

    def run(x: np.ndarray) -> np.ndarray:
        row = _cell_run(path, sets, cell_scale, float(np.exp(x[0])), float(min(1.0, np.exp(x[1]))))
        rows.append({"run": len(rows) + 1, **row})
        if progress:
            progress(min(1.0, len(rows) / (rounds + 2)))
        return np.log([row["commands"] / PUBLISHED_COMMANDS, row["orders"] / PUBLISHED_ORDERS])

    f = run(x)
    jac = np.column_stack([(run(x + d) - f) / d[i] for i, d in enumerate(np.diag([0.1, 0.2]))])
    for _ in range(rounds):
        if np.abs(f).max() < 0.003:
            break
        step = -np.linalg.solve(jac, f)
        step *= min(1.0, 0.5 / np.abs(step).max())  # at most a factor e^0.5 per step
        x_new = np.minimum(x + step, [np.inf, 0.0])  # a share is at most 1
        step, x = x_new - x, x_new
        f_new = run(x)
        jac += np.outer(f_new - f - jac @ step, step) / (step @ step)  # Broyden's update
        f = f_new
    return rows


def _cell_run(path: str | Path, sets: list[str], cell_scale: float, spd: float, try_share: float) -> dict[str, float]:
    """One demand-only cell with these sessions per active day and first-session try share (and
    the pool that makes the launch day's expected DAU the published one): what it gives."""
    from sim.campaign.launch_check import cell, figure_values
    from sim.des import simulate

    trial = sets + [f"population.sessions_per_user_per_day={spd:.6g}",
                    f"population.launch.first_session.try_share={try_share:.6g}"]
    pool = pool_for_dau(cell(path, trial, cell_scale, demand_only=True), PUBLISHED_DAU_LAUNCH)
    sc = cell(path, trial + [f"population.launch.broadcast.pool_users={pool:.6g}"], cell_scale, True)
    v = figure_values(sc, simulate(sc))
    return {"pool_users": pool, "sessions_per_user_per_day": spd, "try_share": try_share,
            "commands": v["commands_feb6_11"], "orders": v["orders_feb6_11"], "dau_feb6": v["dau_feb6"]}
