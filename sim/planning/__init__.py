"""Capacity planning: sweeps and `plan` over a scenario, on either engine, on a local process
pool or Ray. Pure: results as data (figures and tables in `reports.planning`).

    Source(path, overlay, sets)              where every candidate configuration comes from
    parse_axis("services.llm.replicas=1..8") an axis of a sweep or plan (space.py)
    Evaluator(source, engine, backend, cache) runs (configuration, replication) with common
                                             random numbers, cached by scenario hash and seed
    sweep(ev, axes, replications) -> Sweep   the grid, per point: SLO CIs, attainment, cost
    plan(ev, axes, mode, options) -> Plan    cheapest configuration meeting every SLO with a
                                             stated confidence; margin, binding SLO, bottleneck
    outage_margin(ev, point, along=...)      how far demand (or the trigger) can grow before
                                             the system locks in (explore's map, bisected)
    LocalBackend(jobs), RayBackend(address)  where the runs execute (backends.py)
"""

from sim.planning.backends import BackendError, LocalBackend, RayBackend, make_backend
from sim.planning.margin import outage_margin
from sim.planning.plan import WITH_FAULTS, WITHOUT_FAULTS, Plan, PlanOptions, plan
from sim.planning.points import ENGINES, Evaluator, PointCache
from sim.planning.search import Budget
from sim.planning.space import Axis, PlanningError, Source, parse_axis
from sim.planning.sweep import Sweep, pareto_front, sweep

__all__ = [
    "ENGINES", "WITHOUT_FAULTS", "WITH_FAULTS", "Axis", "BackendError", "Budget", "Evaluator", "LocalBackend",
    "Plan", "PlanOptions", "PlanningError", "PointCache", "RayBackend", "Source", "Sweep", "make_backend",
    "outage_margin", "pareto_front", "parse_axis", "plan", "sweep",
]
