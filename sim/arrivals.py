"""When sessions start: the rate curve and the arrival processes built on it.

- `poisson`: a true non-homogeneous Poisson process, by thinning (Lewis & Shedler) window by
  window, with the window's exact maximum rate as the bound.
- `gamma` / `weibull`: renewal processes with inter-arrival CV `cv` (bursty when cv > 1),
  run in operational time: a unit-rate renewal process mapped through the inverse of the
  integrated rate curve, so the long-run rate follows the curve.
- `trace`: timestamps (and optionally token lengths) replayed from a file, time compressed by
  `scale` (scale 2 = twice the rate, same shape).

For a campaign launch (`population.launch`) users, not sessions, arrive: `DailyProfile` is a
daily cycle with its integral (phone-activity time; session times within a day) and
`BroadcastCurve` the rate at which people reached from outside the app join, both used by
`sim.des.users` (thinned like any rate curve with `poisson_times`).

Proactive tasks (`scenario.proactive`) are a second source, of commands rather than sessions:
`proactive_times` (scheduled starts) and `FollowUps` (starts after earlier successes), used
alike by the simulator and the load test.

Every function takes an explicit `numpy.random.Generator` and yields blocks of absolute times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.datafiles import DataFileError
from sim.dists import sampler
from sim.errors import ScenarioError
from sim.scenario.launch import Launch
from sim.scenario.schema import Scenario, read_trace

DAY_S = 86_400.0
_WINDOW_S = 60.0
MAX_DRAW = 1 << 20  # candidate arrivals drawn at once (poisson): ~40 MB at most


@dataclass(frozen=True)
class RateCurve:
    """Session start rate over simulated time, sessions per second:
    base x diurnal(clock hour) x campaign DAU ratio(day)."""

    base_per_s: float
    start_hour: float = 0.0
    hourly: tuple[float, ...] | None = None  # 24 weights normalised to mean 1
    launch_at_s: float | None = None
    dau_ratio: tuple[float, ...] = ()  # campaign DAU / baseline DAU, per day from launch

    @classmethod
    def of(cls, sc: Scenario) -> RateCurve:
        p = sc.population
        hourly = None
        if p is not None and p.diurnal is not None:
            m = sum(p.diurnal) / 24
            hourly = tuple(w / m for w in p.diurnal)
        launch: float | None = None
        ratio: tuple[float, ...] = ()
        if p is not None and p.campaign is not None:
            launch = p.campaign.launch_at_s
            ratio = tuple(d / p.daily_active_users for d in p.campaign.daily_active_users)
        return cls(sc.base_rate_per_s, sc.run.start_hour, hourly, launch, ratio)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        rate = np.full(t.shape, self.base_per_s)
        if self.hourly is not None:
            # knots at hour midpoints, linear in between, cyclic over the day
            h = ((t / 3600.0 + self.start_hour) - 0.5) % 24.0
            lo = np.floor(h).astype(int)
            w = np.asarray(self.hourly)
            rate = rate * (w[lo] + (h - lo) * (w[(lo + 1) % 24] - w[lo]))
        if self.launch_at_s is not None:
            day = np.floor((t - self.launch_at_s) / DAY_S).astype(int)
            ratio = np.asarray(self.dau_ratio)[np.clip(day, 0, len(self.dau_ratio) - 1)]
            rate = rate * np.where(day >= 0, ratio, 1.0)
        return rate

    def max_over(self, t0: float, t1: float) -> float:
        """The exact maximum on [t0, t1]: the curve is piecewise linear between hour midpoints
        and steps at campaign day boundaries, so it peaks at an end or at one of those knots."""
        pts = [t0, t1]
        k0 = math.floor(t0 / 3600 + self.start_hour - 0.5)
        k1 = math.ceil(t1 / 3600 + self.start_hour - 0.5)
        pts += [(k + 0.5 - self.start_hour) * 3600 for k in range(k0, k1 + 1)]
        if self.launch_at_s is not None:
            for d in range(math.floor((t0 - self.launch_at_s) / DAY_S), math.ceil((t1 - self.launch_at_s) / DAY_S) + 1):
                b = self.launch_at_s + d * DAY_S
                pts += [b, b - 1e-9]
        inside = np.clip(np.asarray(pts), t0, t1)
        return float(self(inside).max())

    def integral(self, t1: float, step_s: float = _WINDOW_S) -> tuple[np.ndarray, np.ndarray]:
        """Grid times and the integrated rate Lambda(t) on them (trapezoid), from 0 to t1."""
        grid = np.linspace(0.0, t1, max(2, math.ceil(t1 / step_s) + 1))
        r = self(grid)
        cum = np.concatenate([[0.0], np.cumsum((r[1:] + r[:-1]) / 2 * np.diff(grid))])
        return grid, cum


def poisson_times(curve: RateCurve | BroadcastCurve, horizon_s: float, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Non-homogeneous Poisson arrivals on [0, horizon_s) by thinning, one window at a time.

    A window is `_WINDOW_S` long, or shorter where the rate would put more than `MAX_DRAW`
    candidates in it, so memory per draw stays bounded (~40 bytes a candidate) at any rate."""
    t0 = 0.0
    while t0 < horizon_s:
        t1 = min(t0 + _WINDOW_S, horizon_s)
        lam = curve.max_over(t0, t1)
        if lam * (t1 - t0) > MAX_DRAW:
            t1 = t0 + MAX_DRAW / lam  # still a window of a Poisson process: thinning is exact on any cover
            if t1 <= t0:
                raise ScenarioError(f"arrival rate {lam:.3g}/s leaves no time between arrivals at t={t0:g} s",
                                    path="arrivals")
            lam = curve.max_over(t0, t1)
        if lam > 0:
            n = rng.poisson(lam * (t1 - t0))
            # given n events of a homogeneous process on the window, their times are uniform
            cand = np.sort(rng.uniform(t0, t1, n))
            keep = rng.uniform(0.0, lam, n) < curve(cand)
            if keep.any():
                yield cand[keep]
        t0 = t1


def renewal_times(
    curve: RateCurve, horizon_s: float, rng: np.random.Generator, kind: str, cv: float
) -> Iterator[np.ndarray]:
    """Gamma or Weibull renewal arrivals (mean gap 1 in operational time), time-changed to the curve."""
    grid, cum = curve.integral(horizon_s)
    total = cum[-1]
    draw = _unit_gaps(kind, cv)
    u = 0.0
    while u < total:
        n = max(256, min(1 << 16, int((total - u) * 1.1) + 16))
        us = u + np.cumsum(draw(rng, n))
        u = float(us[-1])
        us = us[us < total]
        if len(us):
            yield np.interp(us, cum, grid)


def _unit_gaps(kind: str, cv: float):  # type: ignore[no-untyped-def]
    if kind == "gamma":
        shape = 1.0 / cv**2
        return lambda rng, n: rng.gamma(shape, 1.0 / shape, n)
    k = _weibull_shape_for_cv(cv)
    scale = 1.0 / math.gamma(1 + 1 / k)
    return lambda rng, n: scale * rng.weibull(k, n)


def _weibull_shape_for_cv(cv: float) -> float:
    """The Weibull shape whose CV is `cv` (bisection on log k; the CV falls as k grows)."""

    def cv_of(k: float) -> float:
        g1, g2 = math.gamma(1 + 1 / k), math.gamma(1 + 2 / k)
        return math.sqrt(max(g2 / g1**2 - 1, 0.0))

    lo, hi = math.log(0.05), math.log(50.0)
    for _ in range(80):
        mid = (lo + hi) / 2
        if cv_of(math.exp(mid)) > cv:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


@dataclass(frozen=True)
class TraceRows:
    times_s: np.ndarray
    prompt_tokens: np.ndarray | None
    output_tokens: np.ndarray | None


def load_trace(sc: Scenario, base_dir: Path) -> TraceRows:
    """Arrival times from the scenario's trace file, relative to its first row, divided by `scale`;
    token counts divided by `token_scale` (rounded, at least 1). The one reading of a trace: the
    simulator (`sim.des.engine`) and the load test (`loadtest.schedule`) both take the k-th
    arrival's lengths from the k-th row of this, so they replay the same requests."""
    tr = sc.arrivals.trace
    assert tr is not None
    try:
        cols = read_trace(tr, base_dir, sc.data_dir)
    except DataFileError as e:
        raise ScenarioError(str(e), path="arrivals.trace") from None
    raw = np.asarray(cols[0])
    prompts, outputs = (_scaled_tokens(c, tr.token_scale) if c is not None else None for c in cols[1:])
    order = np.argsort(raw, kind="stable")
    times = (raw[order] - raw[order][0]) / sc.arrivals.scale
    return TraceRows(
        times,
        prompts[order] if prompts is not None else None,
        outputs[order] if outputs is not None else None,
    )


def _scaled_tokens(col: tuple[float, ...], token_scale: float) -> np.ndarray:
    x = np.asarray(col, dtype=float)
    return x if token_scale == 1 else np.maximum(1.0, np.round(x / token_scale))


def arrival_blocks(sc: Scenario, rng: np.random.Generator, base_dir: Path) -> Iterator[np.ndarray]:
    """Session start times in blocks, for the scenario's arrival process, on [0, duration)."""
    horizon = sc.run.duration_s
    if sc.population is not None and sc.population.launch is not None:
        raise ScenarioError("sessions come from users (sim.des.users), not from one arrival stream; this consumer "
                            "does not run launches yet", path="population.launch")
    if sc.arrivals.process == "trace":
        times = load_trace(sc, base_dir).times_s
        yield times[times < horizon]
        return
    curve = RateCurve.of(sc)
    if sc.arrivals.process == "poisson":
        yield from poisson_times(curve, horizon, rng)
    else:
        yield from renewal_times(curve, horizon, rng, sc.arrivals.process, sc.arrivals.cv)


class DailyProfile:
    """A daily cycle of 24 hourly weights (normalised to mean 1, interpolated as `RateCurve` does)
    and its integral: `elapsed(t)` counts seconds of mean activity since t = 0 (a whole day holds
    86,400 of them), `advance(t, d)` is when `d` more of them have passed; `sample_day` and
    `sample_after` draw times within a clock day from the profile's density."""

    _STEP_S = 60.0

    def __init__(self, weights: tuple[float, ...], start_hour: float = 0.0) -> None:
        m = sum(weights) / 24
        self.curve = RateCurve(1.0, start_hour, tuple(w / m for w in weights))
        self.offset_s = start_hour * 3600.0
        clock = np.arange(0.0, DAY_S + self._STEP_S / 2, self._STEP_S)
        w = self.curve(clock - self.offset_s)
        cum = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2 * self._STEP_S)])
        self._clock, self._cum = clock, cum * (DAY_S / cum[-1])

    def _g(self, t: np.ndarray | float) -> np.ndarray:
        c = np.asarray(t, dtype=float) + self.offset_s
        day = np.floor(c / DAY_S)
        return day * DAY_S + np.interp(c - day * DAY_S, self._clock, self._cum)

    def _g_inv(self, g: np.ndarray | float) -> np.ndarray:
        g = np.asarray(g, dtype=float)
        day = np.floor(g / DAY_S)
        return day * DAY_S + np.interp(g - day * DAY_S, self._cum, self._clock) - self.offset_s

    def elapsed(self, t: np.ndarray | float) -> np.ndarray:
        """Seconds of mean activity from t = 0 to t."""
        return self._g(t) - self._g(0.0)

    def advance(self, t: float, activity_s: np.ndarray | float) -> np.ndarray:
        """The times at which `activity_s` seconds of mean activity have passed since t."""
        return self._g_inv(self._g(t) + np.asarray(activity_s, dtype=float))

    def day_start(self, t: float) -> float:
        """The clock midnight at or before t."""
        return math.floor((t + self.offset_s) / DAY_S) * DAY_S - self.offset_s

    def mass_after(self, t: float) -> float:
        """Fraction of t's clock day's activity still to come after t."""
        return float(1.0 - (self._g(t) - self._g(self.day_start(t))) / DAY_S)

    def sample_day(self, rng: np.random.Generator, n: int, day_start: float) -> np.ndarray:
        """n times in the clock day starting at `day_start`, from the profile's density."""
        return self._g_inv(self._g(day_start) + rng.uniform(0.0, DAY_S, n))

    def sample_after(self, rng: np.random.Generator, n: int, t: float) -> np.ndarray:
        """n times between t and the next clock midnight, from the profile's density."""
        g0 = float(self._g(t))
        end = float(self._g(self.day_start(t))) + DAY_S
        return self._g_inv(rng.uniform(g0, end, n))


def first_session_cdf(frac: np.ndarray | float, lam: float) -> np.ndarray:
    """P(a user active on a day, with 1 + Poisson(lam) sessions drawn from the day's density, has
    had a session once a fraction `frac` of that density has passed) = 1 - E[(1 - F)^n]:
    1 - x e^(-lam (1 - x)), x = 1 - frac."""
    x = 1.0 - np.asarray(frac, dtype=float)
    return 1.0 - x * np.exp(-lam * (1.0 - x))


def sessions_after_first(mu: np.ndarray | float) -> np.ndarray:
    """Expected sessions still to come that day for a user of `first_session_cdf` whose first
    session is now, with mu = lam x the share of the day's density still to come:
    E[n - 1 | first now] = mu (2 + mu) / (1 + mu) (the count is size-biased by the first)."""
    mu = np.asarray(mu, dtype=float)
    return mu * (2.0 + mu) / (1.0 + mu)


class BroadcastCurve:
    """Rate (per second, in the cell) at which people reached from outside the app join after
    the launch at `at_s`. In phone-activity time tau (seconds of mean activity since the launch)
    each person of the pool is unaware (U), aware (A) or joined (J):
    dU/dtau = -rho U, dA/dtau = rho U - kappa A, dJ/dtau = kappa A, with A(0) = aware_at_launch,
    U(0) = 1 - A(0). So A(tau) = alpha e^(-kappa tau) + beta e^(-rho tau),
    beta = (1 - a0) rho / (kappa - rho), alpha = a0 - beta, and the rate in real time is
    pool x kappa x A(tau(t)) x activity(t)."""

    def __init__(self, launch: Launch, profile: DailyProfile, cell: float) -> None:
        b = launch.broadcast
        self.at_s, self.profile = launch.at_s, profile
        self.kappa = b.join_per_hour / 3600.0
        rho = b.reach_per_day / DAY_S
        if abs(self.kappa - rho) < 1e-9 * self.kappa:
            rho *= 1 + 1e-6  # the closed form has kappa = rho as a limit; 1e-6 off changes nothing visible
        self.rho, self.a0, self.pool = rho, b.aware_at_launch, b.pool_users * cell
        self.beta = (1 - self.a0) * rho / (self.kappa - rho)
        self.alpha = self.a0 - self.beta
        ratio = -rho * self.beta / (self.kappa * self.alpha) if self.alpha else -1.0
        self.tau_peak = math.log(ratio) / (rho - self.kappa) if ratio > 0 else 0.0

    def aware(self, tau: np.ndarray | float) -> np.ndarray:
        """Fraction of the pool aware and not yet joined, tau seconds of activity after the launch."""
        tau = np.maximum(np.asarray(tau, dtype=float), 0.0)
        return self.alpha * np.exp(-self.kappa * tau) + self.beta * np.exp(-self.rho * tau)

    def joined(self, t: np.ndarray | float) -> np.ndarray:
        """Expected joins in the cell from the launch to t (0 before it)."""
        tau = np.maximum(self._tau(t), 0.0)
        unaware = (1 - self.a0) * np.exp(-self.rho * tau)
        return self.pool * (1.0 - unaware - self.aware(tau))

    def _tau(self, t: np.ndarray | float) -> np.ndarray:
        return self.profile.elapsed(t) - self.profile.elapsed(self.at_s)

    def __call__(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        rate = self.pool * self.kappa * self.aware(self._tau(t)) * self.profile.curve(t)
        return np.where(t >= self.at_s, rate, 0.0)

    def max_over(self, t0: float, t1: float) -> float:
        """An exact bound on [t0, t1]: the activity's maximum there times A's (A rises to at most
        one peak, at tau_peak, and falls after it)."""
        if t1 < self.at_s:
            return 0.0
        t0 = max(t0, self.at_s)
        tau0, tau1 = float(self._tau(t0)), float(self._tau(t1))
        taus = [tau0, tau1] + ([self.tau_peak] if tau0 < self.tau_peak < tau1 else [])
        a_max = float(self.aware(np.asarray(taus)).max())
        return self.pool * self.kappa * a_max * self.profile.curve.max_over(t0, t1)


@dataclass(frozen=True)
class ProactiveStarts:
    """Scheduled proactive commands: start times (seconds, sorted) and each one's class."""

    times_s: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.times_s)


def proactive_times(sc: Scenario, rng: np.random.Generator) -> ProactiveStarts:
    """Every scheduled proactive start on [0, run.duration_s): at each firing a Poisson count of
    mean `commands` x `arrivals.scale`, spread uniformly over `spread_s` after it."""
    horizon = sc.run.duration_s
    times: list[float] = []
    names: list[str] = []
    for sch in sc.proactive.schedules if sc.proactive else ():
        for t in sch.firings(horizon):
            n = int(rng.poisson(sch.commands * sc.arrivals.scale))
            for x in (t + rng.uniform(0.0, sch.spread_s, n) if sch.spread_s else np.full(n, t)).tolist():
                if x < horizon:
                    times.append(x)
                    names.append(sch.start)
    order = np.argsort(np.asarray(times), kind="stable")
    return ProactiveStarts(np.asarray(times)[order], tuple(names[i] for i in order.tolist()))


class FollowUps:
    """The follow-ups a success triggers (`proactive.follow_ups`): `after(cls)` gives the
    (class, delay in seconds) of each follow-up to start, from the caller's own seeded stream."""

    def __init__(self, sc: Scenario, rng: np.random.Generator) -> None:
        self._rng = rng
        self._by_class: dict[str, list[tuple[str, float, Callable[[], float]]]] = {}
        for f in sc.proactive.follow_ups if sc.proactive else ():
            self._by_class.setdefault(f.after, []).append((f.start, f.probability, sampler(f.delay_s, rng)))

    def __bool__(self) -> bool:
        return bool(self._by_class)

    def after(self, cls: str) -> list[tuple[str, float]]:
        out = []
        for start, p, delay in self._by_class.get(cls, ()):
            if p >= 1 or self._rng.random() < p:
                out.append((start, max(0.0, float(delay()))))
        return out
