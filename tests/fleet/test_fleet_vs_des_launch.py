"""Engine against engine: the launch population and the buy funnel (sim/fleet/launch.py,
sim/fleet/funnel.py) against the SimPy engine's users (sim/des/users.py) on a spring_festival
cell, two clock days (cases and criterion in tests/fleet/launch_agreement.py)."""

from __future__ import annotations

import pytest
from launch_agreement import compare

pytestmark = pytest.mark.slow


def test_launch_cell_agrees_with_simpy_per_day() -> None:
    res = compare()
    bad = {k: v for k, v in res.items() if not v["ok"]}
    table = "\n".join(f"{k}: SimPy {v['des']:.5g} fleet {v['fleet']:.5g} ({v['rel']:+.1%}, paired "
                      f"[{v['diff_low']:.4g}, {v['diff_high']:.4g}])" for k, v in res.items())
    assert not bad, table
