"""The launch population and the buy funnel, engine against engine (tests and benchmarks): a
small spring_festival cell through the SimPy engine (n seeds) and the fleet engine (the same n
seeds, one batch), the KPIs the scenario is about compared per clock day with
tests/fleet/agreement.py's criterion: within 5% of the SimPy mean, or the 95% interval of the
paired differences (fleet - SimPy, seed by seed) covering 0."""

from __future__ import annotations

import math

from fleet_helpers import ci, scenario

from sim.campaign.launch_check import day_rows
from sim.des import simulate
from sim.fleet import simulate_batch
from sim.results import Results
from sim.results import names as N
from sim.scenario import Scenario

# Feb 5 (the users who had the app) and Feb 6 (the launch day) at 10x the shipped cell:
# ~830 users who had the app, ~2,500 joining on the launch day
CELL = ("run.duration_s=172800", "population.scale=2e-5")
DAY_KPIS = ("dau", "commands", "buy", "orders", "cards_redeemed")


def kpis(sc: Scenario, r: Results) -> dict[str, float]:
    out = {f"{k}_day{round(row['day']):+d}": float(row[k]) for row in day_rows(sc, r) for k in DAY_KPIS}
    out["sessions"] = float(r.series[N.SESSIONS].sum())
    return out


def compare(overrides: tuple[str, ...] = CELL, n: int = 5, max_dt: float | None = 2.0) -> dict[str, dict[str, float]]:
    sc = scenario("spring_festival.yaml", *overrides)
    des = [kpis(sc, simulate(sc, seed=sc.run.seed + k)) for k in range(n)]
    fleet = [kpis(sc, r) for r in simulate_batch(sc, replications=n, max_dt=max_dt)]
    out = {}
    for k in des[0]:
        dv, fv = [x[k] for x in des], [x[k] for x in fleet]
        d, diff = ci(dv), ci([a - b for a, b in zip(fv, dv, strict=True)])
        f = sum(fv) / n
        rel = (f - d["mean"]) / d["mean"] if d["mean"] else math.nan
        out[k] = {"des": d["mean"], "fleet": f, "rel": rel, "diff_low": diff["low"], "diff_high": diff["high"],
                  "ok": bool(abs(rel) <= 0.05 or diff["low"] <= 0 <= diff["high"])}
    return out
