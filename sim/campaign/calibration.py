"""Calibrating the campaign scenario against the published figures.

Published (Spring Festival free-order campaign, launched 00:00 on Friday 6 February 2026):
daily active users 7.07 M on 5 February and 58.48 M on 6 February; 4.1 billion "help me"
commands over 6-11 February; over 120 million AI orders over the same six days.

The scenario's numbers come from three small models, each here so that tests can recompute
them and compare with what the YAML says:

- `invitation_growth`: daily active users per campaign day. Day 0 is published; afterwards
  returning users (a daily retention) plus newcomers brought by invitations (each day's newcomers
  bring `invite_r` times as many the next day: cards for inviting friends).
- `diurnal_profile`: 24 hourly weights. The day/night swing of a Chinese consumer LLM service
  (ServeGen m-small, Alibaba Bailian, local time; scenarios/data/servegen_m-small_rate_10min.csv),
  sharpened for a consumer app whose users sleep (power `sharpen`), times meal and afternoon-tea
  multipliers (free-order cards were mostly spent on milk tea and coffee).
- `expected_totals`: what the scenario implies, in expectation, for the published totals.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.errors import ScenarioError
from sim.results import Results
from sim.scenario import Scenario

DAY_S = 86_400.0

PUBLISHED = {
    "dau_feb5": 7.07e6,
    "dau_feb6": 58.48e6,
    "commands_feb6_11": 4.1e9,
    "orders_feb6_11": 120e6,
}

# hour -> multiplier on the sharpened ServeGen shape (lunch, afternoon tea, dinner)
MEALS = {11: 1.3, 12: 1.3, 13: 1.7, 14: 2.6, 15: 2.6, 16: 1.8, 17: 1.2, 18: 1.2}


def invitation_growth(dau_before: float, dau_launch: float, days: int, retention: float,
                      invite_r: float) -> list[float]:
    """DAU on each campaign day from launch: day 0 is given; then
    DAU(d) = retention x DAU(d-1) + new(d), new(d) = invite_r x new(d-1), new(0) = DAU(0) - DAU(-1)."""
    dau = [dau_launch]
    new = dau_launch - dau_before
    for _ in range(1, days):
        new *= invite_r
        dau.append(retention * dau[-1] + new)
    return dau


def diurnal_profile(rate_csv: str | Path, sharpen: float = 2.5, meals: dict[int, float] | None = None) -> list[float]:
    """24 hourly weights (mean 1) from a 10-minute rate file with `t_s` from local midnight."""
    by_hour: list[list[float]] = [[] for _ in range(24)]
    with open(rate_csv, newline="") as f:
        for row in csv.DictReader(f):
            if row["agg_rate_req_per_s"]:
                by_hour[int(float(row["t_s"]) % DAY_S // 3600)].append(float(row["agg_rate_req_per_s"]))
    base = np.array([np.mean(h) for h in by_hour])
    w = (base / base.mean()) ** sharpen
    for hour, m in (MEALS if meals is None else meals).items():
        w[hour] *= m
    return [round(float(x), 3) for x in w / w.mean()]


def commands_per_session_mean(dist: Any, n: int = 1_000_000) -> float:
    """Mean commands per session as the engine draws them, max(1, round(x)) (a fixed-seed
    Monte Carlo estimate, standard error about 0.1%)."""
    if dist.type == "constant":
        return float(max(1, round(dist.value)))
    x = dist.sample_n(np.random.default_rng(12345), n)
    return float(np.maximum(1, np.round(x)).mean())


@dataclass(frozen=True)
class Totals:
    dau_feb5: float
    dau_feb6: float
    commands_feb6_11: float
    orders_feb6_11: float

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def expected_totals(sc: Scenario) -> Totals:
    """The published totals the scenario implies in expectation, at full scale.

    Commands per user-day = sessions per user per day x mean commands per session (as the engine
    draws it: max(1, round(x)), which for a skewed distribution is above the mean of x); a command
    places an order with its class probability (the class has `places_order`), assuming it
    succeeds (the calibration cell is provisioned so that it does)."""
    p = sc.population
    if p is None or p.campaign is None:
        raise ScenarioError("population.campaign: required to compare with the campaign's published figures (the scenario has none)")
    per_user = p.sessions_per_user_per_day * commands_per_session_mean(p.commands_per_session)
    dau = p.campaign.daily_active_users[:6]
    order_p = sum(c.probability for c in sc.workload.classes.values() if c.places_order)
    commands = sum(dau) * per_user
    return Totals(p.daily_active_users, dau[0], commands, commands * order_p)


def simulated_totals(sc: Scenario, results: Results) -> tuple[Totals, Totals]:
    """Totals a scaled cell produced, scaled back up by 1 / (population.scale x arrivals.scale),
    and their standard errors (Poisson counts). DAU = sessions started that day (first logins)
    / sessions per user per day."""
    p = sc.population
    assert p is not None and p.campaign is not None
    up = 1.0 / (p.scale * sc.arrivals.scale)
    t = results.t_s
    launch = p.campaign.launch_at_s

    def window(name: str, t0: float, t1: float) -> float:
        s = results.series.get(name)
        return float(s[(t >= t0) & (t < t1)].sum()) if s is not None else 0.0

    classes = list(sc.workload.classes)
    spd = p.sessions_per_user_per_day
    logins5 = window("logins", launch - DAY_S, launch)
    logins6 = window("logins", launch, launch + DAY_S)
    cmds = sum(window(f"arrived:{c}", launch, launch + 6 * DAY_S) for c in classes)
    orders = window("orders", launch, launch + 6 * DAY_S)
    val = Totals(logins5 / spd * up, logins6 / spd * up, cmds * up, orders * up)
    err = Totals(math.sqrt(logins5) / spd * up, math.sqrt(logins6) / spd * up, math.sqrt(cmds) * up,
                 math.sqrt(orders) * up)
    return val, err


def demand_only_overrides(sc: Scenario) -> list[str]:
    """`--set` overrides that make every LLM call one token long (one prefill step, no decode).

    The calibration cell measures demand (sessions, commands, orders) in a stack provisioned so
    that every command succeeds; decode steps do not change those counts but cost one engine
    event per token, so six days of them are out of reach at a scale that counts orders to a
    few percent. Everything else (arrivals, sessions, think times, class mix, tools) runs as is."""
    out = []
    for name, cls in sc.workload.classes.items():
        for i, st in enumerate(cls.stages):
            if st.llm is not None:
                out.append(f"workload.classes.{name}.stages.{i}.llm.output_tokens={{type: constant, value: 1}}")
    return out


def comparison(expected: Totals, simulated: Totals | None = None, error: Totals | None = None) -> list[dict[str, Any]]:
    """One row per published figure: published, the scenario's expectation, the simulated cell."""
    rows = []
    for key, pub in PUBLISHED.items():
        row: dict[str, Any] = {"figure": key, "published": pub, "expected": getattr(expected, key)}
        row["expected_err"] = row["expected"] / pub - 1
        if simulated is not None:
            row["simulated"] = getattr(simulated, key)
            row["simulated_err"] = row["simulated"] / pub - 1
            row["simulated_se"] = getattr(error, key) if error is not None else math.nan
        rows.append(row)
    return rows


def format_comparison(rows: list[dict[str, Any]]) -> str:
    """Published vs expected vs simulated, one line per figure."""
    names = {"dau_feb5": "DAU Feb 5", "dau_feb6": "DAU Feb 6", "commands_feb6_11": "commands Feb 6-11",
             "orders_feb6_11": "orders Feb 6-11"}
    sim = "simulated" in rows[0]
    head = f"{'figure':<18} {'published':>12} {'scenario':>12} {'error':>7}"
    head += f" {'simulated':>12} {'+/- 1 se':>10} {'error':>7}" if sim else ""
    lines = [head]
    for r in rows:
        line = f"{names[r['figure']]:<18} {_m(r['published']):>12} {_m(r['expected']):>12} {r['expected_err']:>+7.1%}"
        if sim:
            line += f" {_m(r['simulated']):>12} {_m(r['simulated_se']):>10} {r['simulated_err']:>+7.1%}"
        lines.append(line)
    return "\n".join(lines)


def _m(x: float) -> str:
    return f"{x / 1e9:.3f} B" if x >= 1e9 else f"{x / 1e6:.2f} M"


def launch_downloads(total: float, days: int, growth: float) -> list[float]:
    """Downloads per day of a launch growing by word of mouth: d(k) = d(0) x growth^k, summing to `total`."""
    d0 = total * (growth - 1) / (growth**days - 1) if growth != 1 else total / days
    return [d0 * growth**k for k in range(days)]


def launch_dau(dau_before: float, downloads: list[float], activation: float, retention: float) -> list[float]:
    """DAU per day: yesterday's users kept at `retention` plus today's downloads that open the app."""
    dau, prev = [], dau_before
    for d in downloads:
        prev = retention * prev + activation * d
        dau.append(prev)
    return dau
