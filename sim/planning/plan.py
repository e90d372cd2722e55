"""`plan`: the cheapest configuration that meets every SLO with a stated confidence, its margin,
binding SLO, bottleneck and cost; with and without the scenario's faults.

The first `--vary` axis is the capacity searched by bisection (values in increasing order of
capacity, or an open integer axis searched from the scenario's value); every combination of
the other axes' values gets its own bisection, and the cheapest result wins (cost per hour as
provisioned, `sim.cost.hourly_cost`; with no `cost` block, the smallest values in `--vary`
order). Each candidate is judged by the sequential test of `sim.planning.verdict`.

The margin at the answer is how much more load (`arrivals.scale` x m) it takes before a
constraint breaks: bisection on m to `margin_tol`. The binding SLO is the one that breaks there,
the bottleneck is read from the runs at the breaking load (`sim.planning.bottleneck`).

Under faults ("with faults"), surviving the trigger is one more constraint: no replication
metastable (`sim.campaign.analyse`). "Without faults" runs the same search with `faults=[]`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sim.planning.bottleneck import bottleneck
from sim.planning.points import Evaluator
from sim.planning.search import Budget, Probe, boundary, decide, probe_json, smallest_passing
from sim.planning.space import Axis, PlanningError, Point, point_values, value_at
from sim.planning.verdict import Constraint, constraints
from sim.results import json_safe

WITH_FAULTS, WITHOUT_FAULTS = "with faults", "without faults"


@dataclass(frozen=True)
class PlanOptions:
    budget: Budget = Budget()
    margin: bool = True
    margin_tol: float = 0.02  # relative, on the load multiplier
    margin_limit: float = 16.0  # the largest load multiplier tried
    max_value: int = 4096  # an open axis is searched up to this


@dataclass
class Plan:
    """The answer of one search (None: nothing in the range meets the constraints)."""

    mode: str
    constraints: list[str]
    answer: dict[str, Any] | None = None
    point: Point | None = None
    judgement: dict[str, Any] | None = None
    cost_per_hour: float | None = None
    currency: str | None = None
    run_cost: dict[str, Any] | None = None
    margin: dict[str, Any] | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (NaN becomes None): what plan.json holds per mode."""
        return json_safe({k: getattr(self, k) for k in ("mode", "constraints", "answer", "judgement", "cost_per_hour",
                                                         "currency", "run_cost", "margin", "candidates", "probes")})


def plan(ev: Evaluator, axes: Sequence[Axis], mode: str, options: PlanOptions = PlanOptions()) -> Plan:
    """One search (see the module docstring); `ev` runs the scenario as it should be judged."""
    if not axes:
        raise PlanningError("--vary: plan needs at least one axis (e.g. --vary services.llm.replicas)")
    for a in axes[1:]:
        if a.is_open:
            raise PlanningError(f"--vary {a.path}: only the first axis may be open; give values for the others")
    base = ev.scenario(())
    cons = constraints(base, survive=mode == WITH_FAULTS and bool(base.faults))
    if not [c for c in cons if c.slo != "survives_trigger"]:
        raise PlanningError(f"{ev.source.path}: slos: the scenario states no SLO to plan for")
    result = Plan(mode, [c.name for c in cons])
    probes: dict[Point, Probe] = {}

    def judged(point: Point) -> Probe:
        if point not in probes:
            probes[point] = decide(ev, point, cons, options.budget)
        return probes[point]

    for rest in itertools.product(*[[a.override(i) for i in range(len(a.values or ()))] for a in axes[1:]]):
        found = _smallest(axes[0], tuple(rest), base, judged, options)
        if found is not None:
            result.candidates.append(_candidate(ev, found, judged(found)))
    result.probes = [probe_json(p, point_values(pt)) for pt, p in probes.items()]
    if not result.candidates:
        return result
    best = min(result.candidates, key=lambda c: (c["cost_per_hour"] if c["cost_per_hour"] is not None else math.inf,
                                                 tuple(c["rank"])))
    point = tuple(best["point"])
    result.answer, result.point = best["values"], point
    result.judgement = judged(point).judgement.to_json()
    result.cost_per_hour, result.currency, result.run_cost = best["cost_per_hour"], best["currency"], best["run_cost"]
    if options.margin:
        result.margin = load_margin(ev, point, cons, options)
    return result


def _smallest(axis: Axis, rest: Point, base: Any, judged: Any, options: PlanOptions) -> Point | None:
    """Bisection on the first axis with the other axes at `rest`."""
    if axis.is_open:
        start = value_at(base, axis.path)
        if not isinstance(start, int) or isinstance(start, bool) or start < 1:
            raise PlanningError(f"--vary {axis.path}: an open axis needs an integer >= 1 in the scenario "
                                f"(got {start!r}); give values: {axis.path}=1,2,4")

        def at(v: int) -> Point:
            return (axis.override_of(v), *rest)

        v = smallest_passing(lambda x: judged(at(x)).passed, start, None, options.max_value)
        return at(v) if v is not None else None
    i = smallest_passing(lambda x: judged((axis.override(x), *rest)).passed, 0, len(axis.values or ()))
    return (axis.override(i), *rest) if i is not None else None


def _candidate(ev: Evaluator, point: Point, probe: Probe) -> dict[str, Any]:
    from sim.cost import hourly_cost

    sc = ev.scenario(point)
    runs = [o["cost"] for o in probe.observations]
    return {"values": point_values(point), "point": list(point), "rank": list(point_values(point).values()),
            "cost_per_hour": hourly_cost(sc), "currency": sc.cost.currency if sc.cost else None,
            "run_cost": _mean_cost(runs), "binding": probe.judgement.to_json()["binding"]}


def _mean_cost(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("replica_hours", "gpu_hours", "cost", "cost_per_1k_good"):
        xs = [r[k] for r in runs if r.get(k) is not None]
        out[k] = sum(xs) / len(xs) if xs else None
    return out


def load_margin(ev: Evaluator, point: Point, cons: Sequence[Constraint], options: PlanOptions) -> dict[str, Any]:
    """How far `arrivals.scale` can rise (x m) before a constraint breaks; what breaks, where."""
    s0 = value_at(ev.scenario(point), "arrivals.scale")
    seen: dict[float, Probe] = {}

    def ok(m: float) -> bool:
        pt = point if m == 1.0 else (*point, f"arrivals.scale={round(s0 * m, 6)!r}")
        seen[m] = decide(ev, pt, cons, options.budget)
        return seen[m].passed

    lo, hi = boundary(ok, 1.0, 1.0 / options.margin_limit, options.margin_limit, options.margin_tol)
    at = seen[hi] if hi is not None else seen[max(seen)]
    broke = [ch for ch in at.judgement.checks if ch.state != "pass"]
    binding = min(broke or at.judgement.checks, key=lambda ch: ch.margin if not math.isnan(ch.margin) else math.inf)
    return {
        "load_ok": lo, "load_breaks": hi, "margin": (lo - 1.0) if lo is not None else None,
        "tolerance": options.margin_tol, "binding": binding.constraint.name, "binding_state": binding.state,
        "bottleneck": bottleneck([o["services"] for o in at.observations]),
        "bottleneck_at_load": max(seen) if hi is None else hi,
        "probes": [{"load": m, **{k: v for k, v in probe_json(p, {}).items() if k != "values"}}
                   for m, p in sorted(seen.items())],
    }
