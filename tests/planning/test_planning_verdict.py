"""The sequential SLO test on given replication values: pass, fail and unsure, the joint
(Bonferroni) bound for passing, and the strict survival constraint."""

from __future__ import annotations

import math

from sim.planning.verdict import SURVIVES, Constraint, check, judge
from sim.stats import t_quantile

P99 = Constraint("chat", "e2e_p99_s", 10.0)
SUCCESS = Constraint("chat", "success_rate", 0.99)


def test_latency_passes_only_when_the_upper_bound_clears_the_target() -> None:
    xs = [9.0, 9.4, 9.2, 9.6]
    mean, s = sum(xs) / 4, math.sqrt(sum((x - 9.3) ** 2 for x in xs) / 3)
    upper = mean + t_quantile(0.95, 3) * s / 2  # k = 1: the one-sided 95% bound
    assert upper < 10.0
    assert check(P99, xs, 1, 0.95).state == "pass"
    assert check(P99, [9.0, 10.9, 9.5], 1, 0.95).state == "unsure"  # mean < target, spread too wide
    assert check(P99, [10.5, 10.7, 10.6], 1, 0.95).state == "fail"


def test_more_constraints_need_a_tighter_bound_to_pass() -> None:
    xs = [9.2, 9.8, 9.5, 9.7]
    assert check(P99, xs, 1, 0.95).state == "pass"
    assert check(P99, xs, 40, 0.95).state == "unsure"  # Bonferroni: q = 1 - 0.05 / 40


def test_success_rate_is_higher_is_better() -> None:
    assert check(SUCCESS, [0.999, 0.998, 0.999], 1, 0.95).state == "pass"
    assert check(SUCCESS, [0.95, 0.96, 0.94], 1, 0.95).state == "fail"
    assert check(SUCCESS, [1.0, 1.0, 1.0], 1, 0.95).state == "pass"  # no spread: the mean decides


def test_a_run_without_a_value_fails_the_target() -> None:
    assert check(P99, [9.0, math.nan, 9.1], 1, 0.95).state == "fail"


def test_survival_is_strict_and_judgement_takes_the_worst() -> None:
    survive = Constraint("", SURVIVES, 0.0)

    def obs(p99: float, metastable: bool) -> dict:  # type: ignore[type-arg]
        return {"slos": [{"class": "chat", "slo": "e2e_p99_s", "actual": p99}],
                "metastability": {"metastable": metastable}}

    ok = [obs(5.0, False), obs(5.1, False), obs(5.2, False)]
    assert judge(ok, [P99, survive], 0.95).state == "pass"
    one_bad = [*ok[:2], obs(5.2, True)]
    j = judge(one_bad, [P99, survive], 0.95)
    assert j.state == "fail" and j.binding().constraint.name == SURVIVES  # type: ignore[union-attr]
