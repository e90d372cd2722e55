"""Searches that spend replications where the decision is close.

- `decide`: the sequential test at one configuration: `min_replications` first, then more in
  steps of `min_replications` while the verdict is unsure, up to `max_replications`.
- `smallest_passing`: bisection for the smallest value of a monotone capacity parameter that
  passes (more capacity never fails where less passed).
- `boundary`: bracketing then bisection for where a monotone verdict flips along a continuous
  parameter (a load multiplier, a trigger's size), to a relative or absolute tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sim.planning.points import Evaluator, Observation
from sim.planning.space import PlanningError, Point
from sim.planning.verdict import Constraint, Judgement, judge

GROW = 1.25  # bracketing steps: start x GROW^(1, 2, 4, 8, ...)


@dataclass(frozen=True)
class Budget:
    """Replications per configuration and the confidence of a verdict."""

    confidence: float = 0.95
    min_replications: int = 3
    max_replications: int = 10

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1:
            raise PlanningError(f"--confidence: must be in [0.5, 1) (got {self.confidence})")
        if not 2 <= self.min_replications <= self.max_replications:
            raise PlanningError("--min-replications: must be >= 2 and <= --max-replications "
                                f"(got {self.min_replications} and {self.max_replications})")


@dataclass(frozen=True)
class Probe:
    """One configuration the search looked at, what it concluded and on what."""

    point: Point
    judgement: Judgement
    observations: tuple[Observation, ...]

    @property
    def passed(self) -> bool:
        return self.judgement.state == "pass"


def decide(ev: Evaluator, point: Point, cons: Sequence[Constraint], budget: Budget) -> Probe:
    """The sequential test at one configuration (see the module docstring)."""
    n = budget.min_replications
    while True:
        obs = ev.observe([point], range(n))[point]
        j = judge(obs, cons, budget.confidence)
        if j.state != "unsure" or n >= budget.max_replications:
            return Probe(point, j, tuple(obs))
        n = min(budget.max_replications, n + budget.min_replications)


def smallest_passing(passes: Callable[[int], bool], start: int, n_values: int | None,
                     max_value: int = 4096) -> int | None:
    """The smallest index (explicit values: 0..n_values-1) or integer (n_values None: >= 1,
    from `start` by doubling up to `max_value`) for which `passes`, assuming monotonicity."""
    if n_values is not None:
        if not passes(n_values - 1):
            return None
        return _bisect(passes, -1, n_values - 1)
    if passes(start):
        return _bisect(passes, 0, start)
    lo, v = start, start * 2
    while not passes(v):
        if v >= max_value:
            return None
        lo, v = v, min(max_value, v * 2)
    return _bisect(passes, lo, v)


def _bisect(passes: Callable[[int], bool], lo: int, hi: int) -> int:
    """Smallest i in (lo, hi] that passes, given that hi does and lo does not (lo may be virtual)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def boundary(ok: Callable[[float], bool], start: float, lower: float, upper: float, tol: float,
             geometric: bool = True) -> tuple[float | None, float | None]:
    """(largest value found ok, smallest found not ok) for a verdict that is ok below some value
    and not above it. Geometric: bracket by start x GROW^(2^k) and bisect to hi/lo <= 1 + tol;
    linear: bracket at the bounds and bisect to hi - lo <= tol. None: ok (or not) up to the bound."""
    lo: float | None
    hi: float | None
    lo, hi = (start, None) if ok(start) else (None, start)
    k = 0
    while lo is None or hi is None:
        going_up = hi is None
        if geometric:
            nxt = min(upper, start * GROW ** (2**k)) if going_up else max(lower, start / GROW ** (2**k))
        else:
            nxt = upper if going_up else lower
        nxt = round(nxt, 6)
        if nxt == (lo if going_up else hi):
            return lo, hi  # already at the bound
        if ok(nxt):
            lo = nxt
        else:
            hi = nxt
        k += 1
    while not _close(lo, hi, tol, geometric):
        mid = round(math.sqrt(lo * hi) if geometric and lo > 0 else (lo + hi) / 2, 6)
        if mid in (lo, hi):
            break
        if ok(mid):
            lo = mid
        else:
            hi = mid
    return lo, hi


def _close(lo: float, hi: float, tol: float, geometric: bool) -> bool:
    return hi / lo - 1 <= tol if geometric and lo > 0 else hi - lo <= tol


def probe_json(p: Probe, values: dict[str, Any]) -> dict[str, Any]:
    """A probe for plan.json: its values, verdict, replications and binding constraint."""
    j = p.judgement.to_json()
    return {"values": values, "state": j["state"], "n": j["n"], "binding": j["binding"], "checks": j["checks"]}
