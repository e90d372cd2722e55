"""Does a configuration meet every SLO with a stated confidence? A sequential test over
replications (common random numbers: the same seeds for every candidate).

Each SLO target of the scenario (`slos.CLASS.{ttft,tpot,e2e}_p99_s`, `slos.CLASS.success_rate`)
is a constraint on the mean over replications of that run's value. With n replications, mean m
and sample deviation s, the one-sided Student-t bounds are m +- t(q, n-1) s / sqrt(n):

- *pass* when the bound on the bad side clears the target at q = 1 - (1 - confidence) / k for
  k constraints (Bonferroni: all k pass jointly with at least `confidence`);
- *fail* when the bound on the good side misses it at q = confidence (one confident miss
  rules the configuration out);
- otherwise *unsure*: run more replications (up to a cap; still unsure there = not shown).

A run with no value for a latency target (nothing succeeded) or a success rate (nothing ended)
fails that target outright. "Survives the trigger" (when asked for) is one more constraint:
no replication is metastable (`sim.campaign.analyse`); a 0/1 event over a few replications has
no useful t interval, so this one is strict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sim.scenario import Scenario
from sim.stats import t_quantile

State = Literal["pass", "fail", "unsure"]
SURVIVES = "survives_trigger"


@dataclass(frozen=True)
class Constraint:
    """One SLO target (`cls`, `slo` as in summary.json), or the survival constraint."""

    cls: str
    slo: str
    target: float

    @property
    def name(self) -> str:
        return SURVIVES if self.slo == SURVIVES else f"{self.cls}.{self.slo}"

    @property
    def higher_better(self) -> bool:
        return self.slo == "success_rate"


def constraints(sc: Scenario, survive: bool = False) -> list[Constraint]:
    """The scenario's SLO targets, in file order; plus survival when `survive`."""
    out = [Constraint(cls, key, float(target)) for cls, slo in sc.slos.items()
           for key, target in slo.model_dump().items() if target is not None]
    if survive:
        out.append(Constraint("", SURVIVES, 0.0))
    return out


def values(obs: Sequence[dict[str, Any]], c: Constraint) -> list[float]:
    """The constraint's value in each observation (NaN where the run has none)."""
    if c.slo == SURVIVES:
        return [float(bool(o["metastability"]["metastable"])) for o in obs]
    out = []
    for o in obs:
        row = next((r for r in o["slos"] if r["class"] == c.cls and r["slo"] == c.slo), None)
        x = row["actual"] if row else None
        out.append(float(x) if x is not None else math.nan)
    return out


@dataclass(frozen=True)
class Check:
    """The state of one constraint over n replications: mean, the one-sided bounds used, the
    margin of the mean (room left as a fraction of the target; negative = missed)."""

    constraint: Constraint
    state: State
    n: int
    mean: float
    low: float
    high: float
    margin: float

    def to_json(self) -> dict[str, Any]:
        c = self.constraint
        return {"name": c.name, "class": c.cls, "slo": c.slo, "target": c.target, "state": self.state,
                "n": self.n, "mean": self.mean, "low": self.low, "high": self.high, "margin": self.margin}


def check(c: Constraint, xs: Sequence[float], k: int, confidence: float) -> Check:
    """One constraint over replications (see the module docstring); k = constraints in all."""
    n = len(xs)
    if c.slo == SURVIVES:
        bad = sum(xs)  # no room to speak of when none was metastable: the margin is NaN then
        return Check(c, "fail" if bad else "pass" if n else "unsure", n, bad / n if n else math.nan,
                     math.nan, math.nan, -bad / n if bad else math.nan)
    if any(not math.isfinite(x) for x in xs):
        return Check(c, "fail", n, math.nan, math.nan, math.nan, -math.inf)
    mean = sum(xs) / n if n else math.nan
    margin = ((mean - c.target) if c.higher_better else (c.target - mean)) / c.target if c.target else math.nan
    if n < 2:
        return Check(c, "unsure", n, mean, math.nan, math.nan, margin)
    s = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    joint = t_quantile(1 - (1 - confidence) / k, n - 1) * s / math.sqrt(n)
    single = t_quantile(confidence, n - 1) * s / math.sqrt(n)
    if c.higher_better:
        low, high = mean - joint, mean + single
        state: State = "pass" if low >= c.target else "fail" if high < c.target else "unsure"
    else:
        low, high = mean - single, mean + joint
        state = "pass" if high <= c.target else "fail" if low > c.target else "unsure"
    return Check(c, state, n, mean, low, high, margin)


@dataclass(frozen=True)
class Judgement:
    """Every constraint's check at one configuration, and the overall state."""

    checks: tuple[Check, ...]

    @property
    def state(self) -> State:
        states = {ch.state for ch in self.checks}
        return "fail" if "fail" in states else "unsure" if "unsure" in states else "pass"

    @property
    def n(self) -> int:
        return max((ch.n for ch in self.checks), default=0)

    def binding(self) -> Check | None:
        """The constraint closest to (or furthest past) its target: the smallest margin."""
        ranked = [ch for ch in self.checks if not math.isnan(ch.margin)]
        return min(ranked, key=lambda ch: ch.margin) if ranked else None

    def to_json(self) -> dict[str, Any]:
        b = self.binding()
        return {"state": self.state, "n": self.n, "binding": b.constraint.name if b else None,
                "checks": [ch.to_json() for ch in self.checks]}


def judge(obs: Sequence[dict[str, Any]], cons: Sequence[Constraint], confidence: float) -> Judgement:
    """Check every constraint over the observations (replications) of one configuration."""
    k = max(1, len(cons))
    return Judgement(tuple(check(c, values(obs, c), k, confidence) for c in cons))


def attainment(obs: Sequence[dict[str, Any]]) -> float:
    """Fraction of replications in which every SLO target passed (NaN with no replications)."""
    if not obs:
        return math.nan
    return sum(all(r["pass"] for r in o["slos"]) for o in obs) / len(obs)
