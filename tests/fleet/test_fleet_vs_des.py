"""Engine against engine: the Feb 8 cell at three loads through both engines, 5 seeds each;
every KPI within 5% of the SimPy mean or inside the SimPy runs' 95% interval, except where
agreement.TOLERANCE states the regime and a wider tolerance (agreement.py)."""

from __future__ import annotations

import functools

import pytest
from agreement import CASES, TOLERANCE, compare

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


# Known drift (issue 11 open): the SimPy engine times a chat class's TTFT from the attempt's start
# (`sim.rules.calls.ttft_from_attempt`, as the load test's client measures it, gateway wait
# included); the fleet engine still times it from the LLM submission. They differ only where the
# gateway queues, i.e. in the overloaded case: its chat TTFT is checked by the strict xfail below.
ATTEMPT_TTFT = ("chat.ttft_p50", "chat.ttft_p99")


@functools.cache
def _results(case: str) -> dict:  # type: ignore[type-arg]
    return compare(CASES[case], tolerance=TOLERANCE.get(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fleet_agrees_with_simpy(case: str) -> None:
    res = _results(case)
    if case == "overloaded_fault":
        res = {k: v for k, v in res.items() if k not in ATTEMPT_TTFT}
    bad = {k: v for k, v in res.items() if not v["ok"]}
    for k, v in res.items():
        print(f"{case} {k}: des {v['des']:.4g} [{v['des_low']:.4g}, {v['des_high']:.4g}], fleet {v['fleet']:.4g} "
              f"({v['rel']:+.1%})")
    assert not bad, bad


@pytest.mark.xfail(strict=True, reason="the fleet engine does not yet time chat TTFT from the attempt's start "
                   "(sim.rules.calls.ttft_from_attempt); the SimPy engine does")
def test_fleet_times_chat_ttft_from_the_attempt_as_simpy_does() -> None:
    res = _results("overloaded_fault")
    assert all(res[k]["ok"] for k in ATTEMPT_TTFT if k in res), {k: res[k] for k in ATTEMPT_TTFT if k in res}
