"""Maximum sustainable throughput: one definition, applied alike to a measured and a simulated run.

A run at a given arrival rate is *sustainable* when, over its post-warm-up window,
- the success rate is at least `Sustain.min_success` (99%),
- completions keep up with arrivals: completed >= `keep_up` x arrived (commands still in flight
  at the end count as not kept up with),
- commands in flight are not growing: the mean over the last third of the window is at most
  `growth` x the mean over the first third plus `slack` commands.

`outcome` names what an unsustainable run did: its queues grew (timeouts, a backlog) or it
shed load (the gateway or a queue refused work: shed and rejected failures dominate).

`find_capacity` searches the arrival-rate multiplier at which a system stops being
sustainable: expand from a start by `step` until the verdict changes, then bisect
(geometrically) until the bracket is within `rel_tol`. The probe is a function, so the same
search runs short load tests against the stack and short simulations of the scenario.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from sim.results import Results
from sim.results import names as N
from sim.results.summary import first_interval

Outcome = Literal["sustained", "queues_grow", "load_shed"]


@dataclass(frozen=True)
class Sustain:
    """Thresholds of the sustainability verdict (fractions; `slack` in commands)."""

    min_success: float = 0.99
    keep_up: float = 0.97
    growth: float = 1.5
    slack: float = 5.0


def _window(r: Results, name: str) -> np.ndarray:
    s = r.series.get(name)
    start = first_interval(r.meta)
    return np.zeros(0) if s is None else np.asarray(s[start:], dtype=float)


def _class_total(r: Results, metric: N.ClassCounter) -> float:
    return float(sum(_window(r, N.of_class(metric, c)).sum() for c in r.meta["classes"]))


def _failed(r: Results, reasons: Sequence[N.Reason]) -> float:
    return float(sum(_window(r, N.failed(c, x)).sum() for c in r.meta["classes"] for x in reasons))


def verdict(r: Results, rule: Sustain | None = None) -> dict[str, Any]:
    """Whether the run was sustainable, with the three figures it was judged on and its outcome."""
    rule = rule or Sustain()
    arrived, completed = _class_total(r, "arrived"), _class_total(r, "completed")
    failed = _failed(r, N.REASONS)
    success = completed / (completed + failed) if completed + failed else math.nan
    kept = completed / arrived if arrived else math.nan
    fl = _window(r, N.IN_FLIGHT)
    third = max(1, len(fl) // 3)
    first, last = (float(fl[:third].mean()), float(fl[-third:].mean())) if len(fl) else (0.0, 0.0)
    growing = last > rule.growth * first + rule.slack
    ok = bool(success >= rule.min_success and kept >= rule.keep_up and not growing)
    shed = _failed(r, ("shed", "rejected"))
    out: Outcome = "sustained" if ok else ("load_shed" if shed > failed / 2 else "queues_grow")
    return {"sustainable": ok, "success_rate": success, "completed_per_arrived": kept,
            "in_flight_first": first, "in_flight_last": last, "outcome": out,
            "throughput_per_s": float(r.summary.get("throughput_per_s") or math.nan),
            "offered_per_s": arrived / float(r.summary.get("window_s") or math.nan)}


def sustainable(runs: Sequence[Results], rule: Sustain | None = None) -> bool:
    """Every run (one per seed) sustainable."""
    return all(verdict(r, rule)["sustainable"] for r in runs)


@dataclass
class CapacitySearch:
    """The probes a search made (multiplier, sustainable, verdicts) and its bracket."""

    lo: float  # the highest multiplier found sustainable (0 when none was)
    hi: float  # the lowest found unsustainable (inf when none was)
    probes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def capacity(self) -> float:
        """The maximum sustainable multiplier: the bracket's geometric middle."""
        if self.lo <= 0 or not math.isfinite(self.hi):
            return self.lo if self.lo > 0 else math.nan
        return math.sqrt(self.lo * self.hi)

    def to_json(self) -> dict[str, Any]:
        return {"lo": self.lo, "hi": self.hi, "capacity": self.capacity, "probes": self.probes}


Probe = Callable[[float], Sequence[Results]]


def find_capacity(probe: Probe, start: float, rel_tol: float = 0.03, step: float = 1.5, max_probes: int = 14,
                  rule: Sustain | None = None) -> CapacitySearch:
    """The multiplier of the arrival rate at which `probe(x)` stops being sustainable (module
    docstring): at most `max_probes` probes; the bracket [lo, hi] is within `rel_tol` unless the
    probes ran out first."""
    if not (start > 0 and step > 1 and rel_tol > 0):
        raise ValueError(f"find_capacity needs start > 0, step > 1, rel_tol > 0 (got {start}, {step}, {rel_tol})")
    search = CapacitySearch(0.0, math.inf)

    def judge(x: float) -> bool:
        runs = probe(x)
        ok = sustainable(runs, rule)
        search.probes.append({"multiplier": x, "sustainable": ok, "verdicts": [verdict(r, rule) for r in runs]})
        if ok:
            search.lo = max(search.lo, x)
        else:
            search.hi = min(search.hi, x)
        return ok

    x = start
    while len(search.probes) < max_probes and (search.lo == 0 or not math.isfinite(search.hi)):
        x = x * step if judge(x) else x / step
        if search.lo and math.isfinite(search.hi):
            break
    while len(search.probes) < max_probes and search.lo > 0 and search.hi / search.lo > 1 + rel_tol:
        judge(math.sqrt(search.lo * search.hi))
    return search
