"""Engine against engine: the launch population and the buy funnel (sim/fleet/launch.py,
sim/fleet/funnel.py) against the SimPy engine's users (sim/des/users.py) on a spring_festival
cell, two clock days (cases and criterion in tests/fleet/launch_agreement.py). Slow: the fleet
engine takes ~11 CPU min for the 5 replications (SimPy 9 s).

Measured 2 December (load 1-11): DAU day -1 / 0 -3.4% / +3.8%, commands -5.1% / +5.3%, buys
-5.0% / +4.9%, sessions +3.5% (all inside the paired interval); orders and cards used on the
launch day -48% (paired interval [-1.9e7, -0.9e7] at full-scale units): not yet explained (a
half-day cell launched at t = 0 gives 0.78 orders per buy in the fleet engine, as SimPy's 0.74,
and so does the full-scale launch day), hence the strict xfail."""

from __future__ import annotations

import pytest
from launch_agreement import compare

# ~11 CPU min: with the orders matrix under `pytest -m agreement`, not in `make test`
pytestmark = [pytest.mark.slow, pytest.mark.agreement]

ORDER_KPIS = ("orders_day+0", "cards_redeemed_day+0")


@pytest.fixture(scope="module")
def res() -> dict[str, dict[str, float]]:
    return compare()


def _table(res: dict[str, dict[str, float]]) -> str:
    return "\n".join(f"{k}: SimPy {v['des']:.5g} fleet {v['fleet']:.5g} ({v['rel']:+.1%}, paired "
                     f"[{v['diff_low']:.4g}, {v['diff_high']:.4g}])" for k, v in res.items())


def test_launch_cell_users_sessions_and_commands_agree_per_day(res: dict[str, dict[str, float]]) -> None:
    bad = {k: v for k, v in res.items() if not v["ok"] and k not in ORDER_KPIS}
    assert not bad, _table(res)


@pytest.mark.xfail(strict=True, reason="launch-day orders -48% in the two-day cell, not yet explained")
def test_launch_cell_orders_and_cards_agree(res: dict[str, dict[str, float]]) -> None:
    bad = {k: v for k, v in res.items() if not v["ok"] and k in ORDER_KPIS}
    assert not bad, _table(res)
