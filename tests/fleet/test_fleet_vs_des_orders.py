"""Engine against engine on the on-sale moment, image queries and the proactive agent: 4 seeds
through both engines; every KPI within 5% of the SimPy mean or inside the SimPy runs' 95%
interval, except the KPIs of the regime stated in DRIFT (checked by a strict xfail)."""

from __future__ import annotations

import functools

import pytest
from orders_agreement import compare, images, onsale, proactive, table

pytestmark = [pytest.mark.slow, pytest.mark.agreement, pytest.mark.timeout(1800)]

CASES = {
    # the shipped on-sale moment: 8 replicas for ~20x the evening's agent load (the LLM locked in
    # overload from 20:00 to 20:06, the gateway queue at ~2,000)
    "onsale": ("premiere_onsale.yaml", (), onsale),
    # the same sale with a fleet sized for the rush (40 replicas): the stock is the only contention
    "onsale_sized": ("premiere_onsale.yaml", ("services.llm.replicas=40",), onsale),
    "images": ("multimodal.yaml", (), images),
    "proactive": ("proactive.yaml", (), proactive),
}
# Stated tolerances (measured, docs/INVENTORY.md): the last of 1,440 sales is a tail quantity (the
# slowest buyer's confirm; conflicts follow it: retries meet held seats until then); an agent
# class's TTFT p99 from ~2,000 calls, where SimPy's four runs land in the same two 2% buckets;
# wrong items are ~2% of ~2,600 orders a run (a count of ~50: +-14% is one standard deviation).
TOLERANCE = {
    "onsale_sized": {"last_sold_s": 0.10, "conflicts": 0.10},
    "images": {"image_buy.ttft_p99": 0.10},
    "proactive": {"wrong_items_per_order": 0.15},
}
# Where the engines do not agree, and why (measured; docs/INVENTORY.md):
# - the shipped on-sale moment: the LLM fleet is locked in overload, and there the fleet engine's
#   pipeline is faster than SimPy's (with unlimited seats it completes 23% more purchases and 18%
#   fewer attempts time out). Fewer attempts time out holding seats, so fewer holds lapse, seats
#   run out earlier, more retries meet taken seats (conflicts), fewer paid attempts fail and retry
#   (duplicates prevented, failed after payment). Seats sold, when the hot rows and the last seat
#   go, payments, sold-out answers and the buyers' success rate agree there all the same.
# - the proactive agent: a retried command's e2e uses the mean age of its row (docs/fleet.md), so
#   the standing orders' burst in the payment brown-out comes out 12-15% fast (3% / 10% without
#   the faults), and as SimPy's standing orders are slower, more of them reach the payment stage
#   inside the brown-out: more lost answers after payment, more retries prevented from paying
#   twice (SimPy 115-117 standing-order retries, the fleet 88-102; duplicates prevented -13%).
DRIFT = {
    "onsale": ("none_free_s", "conflicts", "holds_lapsed", "duplicates_prevented", "failed_after_payment"),
    "proactive": ("morning_coffee.e2e_p50", "morning_coffee.e2e_p99", "errand.e2e_p99", "duplicates_prevented"),
}


@functools.cache
def _results(case: str) -> dict:  # type: ignore[type-arg]
    file, overrides, measure = CASES[case]
    return compare(file, overrides, measure, tolerance=TOLERANCE.get(case))


@pytest.mark.parametrize("case", sorted(CASES))
def test_fleet_agrees_with_simpy_on_orders(case: str) -> None:
    res = _results(case)
    print(table(case, res))
    bad = {k: v for k, v in res.items() if not v["ok"] and k not in DRIFT.get(case, ())}
    assert not bad, bad


@pytest.mark.xfail(strict=True, reason="the fleet engine's pipeline is faster than SimPy's with the LLM locked in "
                   "overload (docs/fleet.md): fewer timed-out holds, so fewer lapses and more conflicts")
def test_fleet_agrees_in_the_overloaded_on_sale_moment() -> None:
    res = _results("onsale")
    assert all(res[k]["ok"] for k in DRIFT["onsale"]), {k: res[k] for k in DRIFT["onsale"]}


@pytest.mark.xfail(strict=True, reason="retried commands' e2e from their row's mean age (docs/fleet.md): the "
                   "standing orders' burst is faster, fewer of them pay inside the brown-out")
def test_fleet_agrees_on_the_proactive_agents_retries() -> None:
    res = _results("proactive")
    assert all(res[k]["ok"] for k in DRIFT["proactive"]), {k: res[k] for k in DRIFT["proactive"]}
