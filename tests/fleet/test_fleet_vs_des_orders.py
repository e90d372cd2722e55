"""Engine against engine on the on-sale moment, image queries and the proactive agent: 4 seeds
through both engines; every KPI within 5% of the SimPy mean or inside the SimPy runs' 95%
interval, except the KPIs of the regime stated in DRIFT (checked by a strict xfail)."""

from __future__ import annotations

import functools

import pytest
from orders_agreement import compare, images, onsale, proactive, table

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

CASES = {
    # the shipped on-sale moment: 8 replicas for ~20x the evening's agent load (the LLM locked in
    # overload from 20:00 to 20:06, the gateway queue at ~2,000)
    "onsale": ("premiere_onsale.yaml", (), onsale),
    # the same sale with a fleet sized for the rush (40 replicas): the stock is the only contention
    "onsale_sized": ("premiere_onsale.yaml", ("services.llm.replicas=40",), onsale),
    "images": ("multimodal.yaml", (), images),
    "proactive": ("proactive.yaml", (), proactive),
}
# Where the engines do not agree, and why (measured; docs/INVENTORY.md): in the shipped on-sale
# moment the LLM fleet is locked in overload, and there the fleet engine's pipeline is faster than
# SimPy's (with unlimited seats it completes 23% more purchases, 18% fewer attempts time out: the
# overload regime of docs/fleet.md). Fewer attempts time out holding seats, so fewer holds lapse,
# seats run out earlier, more retries meet taken seats (conflicts), fewer paid attempts fail and
# retry (duplicates prevented, failed after payment). Seats sold, when the last sells, payments
# and the buyers' success rate agree there all the same.
DRIFT = {
    "onsale": ("none_free_s", "conflicts", "holds_lapsed", "duplicates_prevented", "failed_after_payment"),
}


@functools.cache
def _results(case: str) -> dict:  # type: ignore[type-arg]
    file, overrides, measure = CASES[case]
    return compare(file, overrides, measure)


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
