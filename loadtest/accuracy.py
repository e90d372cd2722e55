"""How well the simulator predicts the stack: errors per load, metric and class, judged on targets.

Input: `Level`s — one load level each (a fraction of the measured maximum sustainable throughput,
an overload, the fault run, a trace replay), with the measured and the simulated runs of the same
seeds. Output (`error_table`): plain data for reports and JSON.

- A cell is one (level, class, metric): the mean over seeds of each side with its 95% Student-t
  interval (`sim.stats.mean_ci`), the prediction error (simulated mean / measured mean - 1; the
  measurement is the truth, + means the simulator predicts too much), and the interval of the
  per-seed paired errors (seeds match, so the arrival instants match).
- Metrics per class: TTFT, TPOT and e2e at p50 and p99, goodput and success rate.
- Targets (`Targets`): p50 error <= 5% and p99 <= 10% for TTFT and e2e per class at every load
  up to 90% (a trace replay too, at its fraction of the capacity); maximum sustainable throughput within 5%; at overload goodput within 10% and the
  same outcome on both sides (`loadtest.capacity.outcome`); recovery time within 20%.
- MAPE: mean |error| over the judged latency cells, and over every latency cell.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from loadtest.capacity import verdict
from sim.results import Results
from sim.stats import mean_ci

LevelKind = Literal["load", "overload", "fault", "trace"]
LATENCY = ("ttft.p50", "ttft.p99", "tpot.p50", "tpot.p99", "e2e.p50", "e2e.p99")
RATES = ("goodput_per_s", "success_rate")
METRICS = LATENCY + RATES


@dataclass(frozen=True)
class Targets:
    """The accuracy targets (relative errors) and the highest load fraction latency is judged at."""

    p50: float = 0.05
    p99: float = 0.10
    judged_up_to: float = 0.90
    capacity: float = 0.05
    overload_goodput: float = 0.10
    recovery: float = 0.20


@dataclass
class Level:
    """One load level: runs measured and simulated with the same seeds (same order)."""

    label: str
    kind: LevelKind
    fraction: float  # of the measured maximum sustainable throughput (NaN when not a fraction)
    multiplier: float  # of the scenario's arrival rate
    measured: list[Results] = field(default_factory=list)
    simulated: list[Results] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # the run folders, relative to the validation's folder


def value(r: Results, cls: str, metric: str) -> float:
    """A metric of a class from a run's summary: `ttft.p50`, `e2e.p99`, `goodput_per_s`, ..."""
    v: Any = r.summary.get("classes", {}).get(cls, {})
    for part in metric.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return float(v) if isinstance(v, int | float) else math.nan


def rel_error(sim: float, meas: float) -> float:
    """Simulated / measured - 1 (NaN when either is missing or the measurement is 0)."""
    if not (math.isfinite(sim) and math.isfinite(meas)) or meas == 0:
        return 0.0 if sim == meas == 0 else math.nan
    return sim / meas - 1.0


def _target(t: Targets, lv: Level, metric: str) -> float | None:
    """The target a cell is judged on, or None when it is reported only."""
    if lv.kind in ("load", "trace") and lv.fraction <= t.judged_up_to + 1e-9 and metric.split(".")[0] in ("ttft", "e2e"):
        return t.p50 if metric.endswith("p50") else t.p99
    if lv.kind == "overload" and metric == "goodput_per_s":
        return t.overload_goodput
    return None


def cell(lv: Level, cls: str, metric: str, t: Targets) -> dict[str, Any]:
    """One (level, class, metric) cell: both sides with CIs, the error and its verdict."""
    sims = [value(r, cls, metric) for r in lv.simulated]
    meas = [value(r, cls, metric) for r in lv.measured]
    s, m = mean_ci(sims), mean_ci(meas)
    err = rel_error(s["mean"], m["mean"])
    paired = mean_ci([rel_error(a, b) for a, b in zip(sims, meas, strict=False)])
    target = _target(t, lv, metric)
    return {"level": lv.label, "kind": lv.kind, "fraction": lv.fraction, "class": cls, "metric": metric,
            "sim": s, "meas": m, "error": err, "error_low": paired["low"], "error_high": paired["high"],
            "meas_noise": m["half_width"] / m["mean"] if m["mean"] else math.nan,
            "target": target, "pass": None if target is None else bool(math.isfinite(err) and abs(err) <= target)}


def classes_of(levels: Sequence[Level]) -> list[str]:
    for lv in levels:
        for r in lv.measured:
            return list(r.meta["classes"])
    return []


def overload_outcomes(lv: Level) -> dict[str, Any]:
    """What each side did at overload: outcomes per seed and whether they agree."""
    sim = [verdict(r)["outcome"] for r in lv.simulated]
    meas = [verdict(r)["outcome"] for r in lv.measured]
    s_all, m_all = (max(set(x), key=x.count) if x else None for x in (sim, meas))
    return {"level": lv.label, "sim": sim, "meas": meas, "sim_outcome": s_all, "meas_outcome": m_all,
            "pass": s_all is not None and s_all == m_all}


def recovery_times(runs: Sequence[Results]) -> list[float | None]:
    """Seconds to recover after each run's first fault (None: not recovered), from `meta.recovery`."""
    out: list[float | None] = []
    for r in runs:
        rows = r.meta.get("recovery") or []
        out.append(rows[0]["recovery_s"] if rows and rows[0]["recovered"] else None)
    return out


def recovery_cell(lv: Level, t: Targets) -> dict[str, Any]:
    """Recovery after the fault: both sides' times per seed, means with CIs, error, verdict.
    A side that did not recover in some seed fails unless the other side did not either."""
    sim, meas = recovery_times(lv.simulated), recovery_times(lv.measured)
    s = mean_ci([x for x in sim if x is not None])
    m = mean_ci([x for x in meas if x is not None])
    same_fate = [(a is None) == (b is None) for a, b in zip(sim, meas, strict=False)]
    err = rel_error(s["mean"], m["mean"])
    ok = all(same_fate) and (math.isfinite(err) and abs(err) <= t.recovery or s["mean"] == m["mean"])
    return {"level": lv.label, "sim_s": sim, "meas_s": meas, "sim": s, "meas": m, "error": err,
            "target": t.recovery, "pass": bool(ok)}


def capacity_cell(sim_capacity: float, meas_capacity: float, offered_per_unit: float, t: Targets) -> dict[str, Any]:
    """Maximum sustainable throughput, simulated against measured (multipliers and commands/s)."""
    err = rel_error(sim_capacity, meas_capacity)
    return {"sim_multiplier": sim_capacity, "meas_multiplier": meas_capacity,
            "sim_per_s": sim_capacity * offered_per_unit, "meas_per_s": meas_capacity * offered_per_unit,
            "error": err, "target": t.capacity, "pass": bool(math.isfinite(err) and abs(err) <= t.capacity)}


def mape(cells: Sequence[dict[str, Any]]) -> float:
    errs = [abs(c["error"]) for c in cells if math.isfinite(c["error"])]
    return sum(errs) / len(errs) if errs else math.nan


def error_table(levels: Sequence[Level], t: Targets | None = None, capacity: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every cell, the overload outcomes, recovery, capacity, the MAPEs and the misses."""
    t = t or Targets()
    classes = classes_of(levels)
    cells = [cell(lv, c, m, t) for lv in levels for c in classes for m in METRICS if lv.measured]
    over = [overload_outcomes(lv) for lv in levels if lv.kind == "overload" and lv.measured]
    rec = [recovery_cell(lv, t) for lv in levels if lv.kind == "fault" and lv.measured]
    judged = [c for c in cells if c["target"] is not None and c["metric"] in LATENCY]
    latency = [c for c in cells if c["metric"] in LATENCY and c["kind"] == "load"]
    misses = [f"{c['level']} {c['class']} {c['metric']}: error {100 * c['error']:+.1f}% (target ±{100 * c['target']:.0f}%)"
              for c in cells if c["pass"] is False]
    misses += [f"{o['level']}: outcome simulated {o['sim_outcome']}, measured {o['meas_outcome']}" for o in over
               if not o["pass"]]
    misses += [f"recovery after the fault: simulated {r['sim_s']}, measured {r['meas_s']} s" for r in rec if not r["pass"]]
    if capacity is not None and not capacity["pass"]:
        misses.append(f"maximum sustainable throughput: error {100 * capacity['error']:+.1f}% "
                      f"(target ±{100 * t.capacity:.0f}%)")
    return {"targets": t.__dict__, "classes": classes, "cells": cells, "overload": over, "recovery": rec,
            "capacity": capacity, "mape_judged": mape(judged), "mape_latency": mape(latency),
            "misses": misses, "met": not misses}
