"""What a fleet costs: from a scenario's `cost` block, for a configuration or for a run.

One home for pricing, used by the planner (the cost of a candidate configuration) and by
reports (cost and efficiency of a run: goodput per replica, per GPU-hour, cost per good command).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.results import Results
from sim.results import names as N
from sim.results.summary import first_interval
from sim.scenario import Scenario
from sim.scenario.services import RooflineCost


def gpus_per_replica(sc: Scenario) -> int:
    """GPUs in one LLM replica: `cost.gpus_per_replica`, else the roofline GPU count, else 1."""
    if sc.cost and sc.cost.gpus_per_replica:
        return sc.cost.gpus_per_replica
    llm = sc.services.llm
    if llm is not None and isinstance(llm.cost_model, RooflineCost):
        return llm.cost_model.gpu.count
    return 1


def replica_hour_price(sc: Scenario) -> float | None:
    """Price of one LLM replica-hour, or None when the scenario prices no GPUs."""
    c = sc.cost
    if c is None:
        return None
    if c.replica_hour is not None:
        return c.replica_hour
    if c.gpu_hour is not None:
        return c.gpu_hour * gpus_per_replica(sc)
    return None


def slots(sc: Scenario) -> dict[str, int]:
    """Concurrency slots provisioned per non-LLM service."""
    sv = sc.services
    out = {"gateway": sv.gateway.concurrency} if sv.gateway else {}
    if sv.auth:
        out["auth"] = sv.auth.concurrency
    out.update({n: t.concurrency for n, t in sv.tools.items()})
    return out


def hourly_cost(sc: Scenario) -> float | None:
    """What the configuration costs per hour as provisioned (replicas as configured; with
    autoscaling, its `max_replicas` is what must be reservable). None when nothing is priced."""
    if sc.cost is None:
        return None
    total = 0.0
    llm = sc.services.llm
    price = replica_hour_price(sc)
    if llm is not None and price is not None:
        n = llm.autoscaling.max_replicas if llm.autoscaling else llm.replicas
        total += n * price
    have = slots(sc)
    total += sum(p * have.get(name, 0) for name, p in sc.cost.slot_hour.items())
    return total


def run_cost(sc: Scenario | None, results: Results) -> dict[str, Any]:
    """Cost and efficiency of a run over its post-warm-up window: replica-hours actually up,
    GPU-hours, goodput per replica and per GPU-hour, and (when priced) cost in total and per
    thousand good commands. Missing inputs give None, never a guess."""
    meta, series = results.meta, results.series
    start = first_interval(meta)
    dt = float(meta["interval_s"])
    window_s = float(results.summary.get("window_s") or 0.0)
    up = series.get(N.of_service("capacity", "llm"))
    replica_hours = float(np.sum(up[start:]) * dt / 3600) if up is not None else None
    gpus = gpus_per_replica(sc) if sc is not None else 1
    gpu_hours = replica_hours * gpus if replica_hours is not None else None
    good = sum(float(np.sum(series[N.of_class("good", c)][start:])) for c in meta["classes"]
               if N.of_class("good", c) in series)
    mean_up = replica_hours * 3600 / window_s if replica_hours and window_s else None
    out: dict[str, Any] = {
        "currency": sc.cost.currency if sc is not None and sc.cost else None,
        "replica_hours": replica_hours, "gpu_hours": gpu_hours, "mean_replicas_up": mean_up,
        "good_commands": good,
        "goodput_per_replica_per_s": good / window_s / mean_up if mean_up and window_s else None,
        "good_per_gpu_hour": good / gpu_hours if gpu_hours else None,
        "cost": None, "cost_per_1k_good": None,
    }
    price = replica_hour_price(sc) if sc is not None else None
    if sc is not None and sc.cost is not None and (price is not None or sc.cost.slot_hour):
        llm_cost = (replica_hours or 0.0) * (price or 0.0)
        have = slots(sc)
        slot_cost = sum(p * have.get(n, 0) for n, p in sc.cost.slot_hour.items()) * window_s / 3600
        out["cost"] = llm_cost + slot_cost
        out["cost_per_1k_good"] = 1000 * out["cost"] / good if good else math.inf
    return out
