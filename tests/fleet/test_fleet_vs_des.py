"""Engine against engine: the Feb 8 cell at three loads through both engines, 5 seeds each;
every KPI within 5% of the SimPy mean or inside the SimPy runs' 95% interval, except where
agreement.TOLERANCE states the regime and a wider tolerance (agreement.py)."""

from __future__ import annotations

import pytest
from agreement import CASES, TOLERANCE, compare

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_fleet_agrees_with_simpy(case: str) -> None:
    res = compare(CASES[case], tolerance=TOLERANCE.get(case))
    bad = {k: v for k, v in res.items() if not v["ok"]}
    for k, v in res.items():
        print(f"{case} {k}: des {v['des']:.4g} [{v['des_low']:.4g}, {v['des_high']:.4g}], fleet {v['fleet']:.4g} "
              f"({v['rel']:+.1%})")
    assert not bad, bad
