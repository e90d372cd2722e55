"""Engine against engine: the Feb 8 cell at three loads through both engines, 5 seeds each;
every KPI within 5% of the SimPy mean or the 95% interval of the paired differences covering 0,
except where agreement.TOLERANCE states the regime and a wider tolerance (agreement.py). Both engines time a
chat class's TTFT from the attempt's start and record it only while its client still waited
(`sim.rules.calls`), so the gateway's queue counts in the overloaded case."""

from __future__ import annotations

import functools

import pytest
from agreement import CASES, TOLERANCE, compare

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@functools.cache
def _results(case: str) -> dict:  # type: ignore[type-arg]
    return compare(CASES[case], tolerance=TOLERANCE.get(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fleet_agrees_with_simpy(case: str) -> None:
    res = _results(case)
    bad = {k: v for k, v in res.items() if not v["ok"]}
    for k, v in res.items():
        print(f"{case} {k}: des {v['des']:.4g} [{v['des_low']:.4g}, {v['des_high']:.4g}], fleet {v['fleet']:.4g} "
              f"({v['rel']:+.1%}; fleet - des [{v['diff_low']:.4g}, {v['diff_high']:.4g}]) {'ok' if v['ok'] else 'NO'}")
    assert not bad, bad
