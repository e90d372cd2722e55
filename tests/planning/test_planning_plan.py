"""`plan` against theory (the smallest c that Erlang C says meets a sojourn-time target, and
the load margin at it), and the bottleneck of a two-tier chain."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from planning_helpers import LAMBDA, evaluator, mmc_source, sojourn_p99, two_tier_source

from sim.planning import WITHOUT_FAULTS, Budget, PlanOptions, parse_axis, plan

SERVERS = "services.tools.server.concurrency"


def _target_between(c: int) -> float:
    """A p99 target that c servers meet and c - 1 miss, each by at least 8% (theory)."""
    worse, better = sojourn_p99(c - 1), sojourn_p99(c)
    target = math.sqrt(worse * better) if math.isfinite(worse) else 1.25 * better
    assert better < target / 1.08 and worse > target * 1.08, "the theory gap is too small to test"
    return target


def _smallest_by_theory(target: float) -> int:
    return next(c for c in range(1, 100) if sojourn_p99(c) <= target)


def _largest_load_by_theory(c: int, target: float) -> float:
    """The largest arrival-rate multiplier m with p99 of W at (c, m lambda) <= target."""
    lo, hi = 1.0, c / LAMBDA  # at m = c / lambda the queue is unstable
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sojourn_p99(c, mid * LAMBDA) <= target else (lo, mid)
    return lo


@pytest.mark.theory
@pytest.mark.slow
@pytest.mark.parametrize("c_expected", [5, 6])
def test_plan_finds_the_erlang_c_answer_and_its_margin(c_expected: int) -> None:
    target = _target_between(c_expected)
    c_star = _smallest_by_theory(target)
    assert c_star == c_expected
    opts = PlanOptions(Budget(0.95, 3, 9), margin=True, margin_tol=0.02)
    p = plan(evaluator(mmc_source(target)), [parse_axis(SERVERS)], WITHOUT_FAULTS, opts)
    assert p.answer == {SERVERS: c_star}
    tried = {pr["values"][SERVERS]: pr["state"] for pr in p.probes}
    assert tried[c_star] == "pass" and tried[c_star - 1] == "fail"
    # the margin brackets theory's largest load within the search tolerance and the p99's
    # estimation error (a per-run p99 from a log histogram, within 1%, over ~16,000 jobs)
    m = p.margin
    assert m is not None and m["binding"] == "job.e2e_p99_s"
    m_theory = _largest_load_by_theory(c_star, target)
    assert m["load_ok"] <= m_theory * 1.04 and m["load_breaks"] >= m_theory * 0.96, (m, m_theory)


@pytest.mark.slow
@pytest.mark.parametrize("tight", ["front", "back"])
def test_plan_names_the_tier_that_saturates(tmp_path: Path, tight: str) -> None:
    """Plan the tight tier with the other one ample: at the breaking load the tight tier is the
    one that saturates and whose queue grows first."""
    other = "back" if tight == "front" else "front"
    src = two_tier_source(tmp_path, front=2, back=2).with_sets(f"services.tools.{other}.concurrency=12")
    opts = PlanOptions(Budget(0.95, 3, 6), margin=True, margin_tol=0.05)
    p = plan(evaluator(src), [parse_axis(f"services.tools.{tight}.concurrency=1..10")], WITHOUT_FAULTS, opts)
    assert p.answer is not None and p.margin is not None
    neck = p.margin["bottleneck"]
    assert neck["service"] == tight, neck
    assert neck["ranking"][1]["service"] == other and neck["ranking"][1]["utilisation"] < 0.5 * neck["utilisation"]


def test_an_impossible_target_has_no_answer() -> None:
    """A p99 below what the service time alone allows: no server count meets it."""
    p = plan(evaluator(mmc_source(target_s=1.0, duration_s=1500)), [parse_axis(f"{SERVERS}=6,8")], WITHOUT_FAULTS,
             PlanOptions(Budget(0.95, 2, 2), margin=False))
    assert p.answer is None
    assert [pr["state"] for pr in p.probes] == ["fail"]  # the largest value fails: nothing smaller is tried
