"""`sweep`: a grid over scenario fields, every point with the same replications (common random
numbers), summarised per point: each SLO metric's mean and confidence interval, SLO attainment
(the fraction of replications meeting every SLO), cost per hour as provisioned, the share of
replications that were metastable, and the bottleneck. `pareto_front` marks the points no other
point beats on both cost and attainment. Figures and tables: `reports.planning`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.cost import hourly_cost
from sim.planning.bottleneck import bottleneck
from sim.planning.points import Evaluator, Observation
from sim.planning.space import Axis, Point, grid, point_values
from sim.planning.verdict import attainment, constraints, values
from sim.results import json_safe
from sim.stats import mean_ci

SWEEP_FORMAT = "surge-sweep/1"
RUN_KPIS = ("success_rate", "goodput_per_s", "attempts_per_command")


@dataclass
class Sweep:
    """Everything `surge sweep` found; `to_json()` is what sweep.json holds."""

    scenario: str
    axes: list[dict[str, Any]]
    engine: str
    seeds: list[int]
    confidence: float
    points: list[dict[str, Any]]
    computed: int = 0
    reused: int = 0

    def to_json(self) -> dict[str, Any]:
        return json_safe({"format": SWEEP_FORMAT, "scenario": self.scenario, "axes": self.axes,
                          "engine": self.engine, "seeds": self.seeds, "replications": len(self.seeds),
                          "confidence": self.confidence, "pareto": pareto_front(self.points),
                          "runs_computed": self.computed, "runs_reused": self.reused, "points": self.points})

    def write(self, folder: str | Path) -> Path:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "sweep.json"
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path


def sweep(ev: Evaluator, axes: Sequence[Axis], replications: int, confidence: float = 0.95) -> Sweep:
    """Run every grid point `replications` times (seeds run.seed + 0, 1, ...) and summarise."""
    points = grid(axes)
    obs = ev.observe(points, range(replications))
    rows = [_summarise(ev, p, obs[p], confidence) for p in points]
    return Sweep(ev.scenario(()).name, [{"path": a.path, "values": list(a.values or ())} for a in axes], ev.engine,
                 [ev.seed(r) for r in range(replications)], confidence, rows, ev.computed, ev.reused)


def _summarise(ev: Evaluator, point: Point, obs: list[Observation], confidence: float) -> dict[str, Any]:
    sc = ev.scenario(point)
    slos = {}
    for c in constraints(sc):
        xs = values(obs, c)
        ci = mean_ci(xs, confidence)
        passed = [_meets(x, c.target, c.higher_better) for x in xs]
        slos[c.name] = {"class": c.cls, "slo": c.slo, "target": c.target, "higher_better": c.higher_better,
                        **ci, "pass_fraction": sum(passed) / len(passed) if passed else math.nan}
    kpis = {k: mean_ci([o["kpis"].get(k, math.nan) for o in obs], confidence) for k in RUN_KPIS}
    neck = bottleneck([o["services"] for o in obs])
    return {
        "values": point_values(point), "point": list(point), "n": len(obs),
        "attainment": attainment(obs), "cost_per_hour": hourly_cost(sc),
        "currency": sc.cost.currency if sc.cost else None,
        "metastable_fraction": sum(bool(o["metastability"]["metastable"]) for o in obs) / len(obs) if obs else math.nan,
        "bottleneck": neck["service"] if neck else None, "slos": slos, "kpis": kpis,
    }


def _meets(x: float, target: float, higher_better: bool) -> bool:
    if not math.isfinite(x):
        return False
    return x >= target if higher_better else x <= target


def pareto_front(points: Sequence[dict[str, Any]]) -> list[int]:
    """Indices of the points that no other point beats on both cost per hour (lower) and SLO
    attainment (higher), by cost; empty when the scenario prices nothing."""
    priced = [(i, p["cost_per_hour"], p["attainment"]) for i, p in enumerate(points)
              if p.get("cost_per_hour") is not None and p.get("attainment") is not None
              and not math.isnan(p["attainment"])]
    front = []
    for i, cost, att in priced:
        dominated = any((c2 <= cost and a2 >= att) and (c2 < cost or a2 > att) for _, c2, a2 in priced)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i]["cost_per_hour"], -points[i]["attainment"]))
