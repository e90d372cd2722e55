"""The margin question for outages: for one configuration, how far can demand rise (or the
trigger grow) before the system locks in, i.e. stays down after the trigger has ended?

This walks one axis of `surge explore vulnerability`'s map (`sim.campaign.explore`: the same
cell overrides, load = `arrivals.scale`, the trigger = one fault's magnitude or duration, and the
same rule: a cell is locked in when at least half its replications are) and, instead of a grid,
bisects for the boundary. Each replication is judged by `sim.campaign.analyse`: `metastable`
(down for at least `hold_s` after the trigger ended; the default) or `stuck_at_end` (still down
at the end, the vulnerability map's criterion). Replication r uses seed run.seed + r at every
probe (common random numbers), so the boundary is not blurred by different draws.
"""

from __future__ import annotations

from typing import Any, Literal

from sim.campaign.explore import cell_overrides, locked_in
from sim.planning.points import Evaluator
from sim.planning.search import boundary
from sim.planning.space import PlanningError, Point, value_at

Along = Literal["load", "magnitude", "duration"]
Criterion = Literal["metastable", "stuck_at_end"]
_FRACTION_KINDS = ("capacity_loss", "error_rate", "session_invalidation")


def outage_margin(ev: Evaluator, point: Point = (), along: Along = "load", fault: int = 0,
                  replications: int = 4, tol: float = 0.02, criterion: Criterion = "metastable",
                  limit: float = 16.0) -> dict[str, Any]:
    """Bisect along `along` for where the configuration `point` locks in. Load is a multiplier
    of the scenario's `arrivals.scale` (relative `tol`); a fraction-valued trigger magnitude is
    searched on [0, 1] (absolute `tol`); a duration or slowdown multiplier geometrically."""
    sc = ev.scenario(point)
    if along != "load" and not 0 <= fault < len(sc.faults):
        raise PlanningError(f"--fault: index {fault} out of range (the scenario has {len(sc.faults)} faults)")
    if replications < 1:
        raise PlanningError(f"--replications: must be >= 1 (got {replications})")
    start, lower, upper, geometric = _axis(sc, along, fault, limit)
    s0 = float(value_at(sc, "arrivals.scale") or 1.0)
    probes: list[dict[str, Any]] = []

    def ok(x: float) -> bool:
        sets = {"load": lambda: cell_overrides(fault, load=round(s0 * x, 6)),
                "magnitude": lambda: cell_overrides(fault, magnitude=x),
                "duration": lambda: cell_overrides(fault, duration_s=x)}[along]()
        pt = (*point, *sets) if x != start else point
        obs = ev.observe([pt], range(replications))[pt]
        stuck = sum(bool(o["metastability"][criterion]) for o in obs) / len(obs)
        probes.append({"value": x, "locked_in_fraction": stuck, "locked_in": locked_in(stuck)})
        return not locked_in(stuck)

    lo, hi = boundary(ok, start, lower, upper, tol, geometric)
    return {
        "along": along, "fault": fault if along != "load" else None, "criterion": criterion,
        "replications": replications, "seeds": [ev.seed(r) for r in range(replications)],
        "start": start, "ok_up_to": lo, "locks_in_at": hi,
        "margin": (lo / start - 1.0) if lo is not None and start else None,
        "tolerance": tol, "probes": sorted(probes, key=lambda p: p["value"]),
    }


def _axis(sc: Any, along: Along, fault: int, limit: float) -> tuple[float, float, float, bool]:
    """(start, lower, upper, geometric) of the searched value."""
    if along == "load":
        return 1.0, 1.0 / limit, limit, True
    f = sc.faults[fault]
    if along == "duration":
        return float(f.duration_s), float(f.duration_s) / limit, float(f.duration_s) * limit, True
    if f.kind in _FRACTION_KINDS:
        return float(f.magnitude), 0.0, 1.0, False
    if f.kind == "slowdown":
        return float(f.magnitude), 1.0, float(f.magnitude) * limit, True
    raise PlanningError(f"--along magnitude: faults.{fault} is an {f.kind}, which has no size to grow "
                        "(use --along duration or load)")
