"""The outage margin bisects one axis of the vulnerability map and must agree with the map
(tests/campaign/test_campaign_vulnerability.py: at load 1.0 a 78% cut for 10 s recovers, 80%
locks in; at 75% load an 80% cut recovers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.planning import Evaluator, LocalBackend, Source, outage_margin

RETRY = Path(__file__).resolve().parents[2] / "scenarios" / "metastable_retry.yaml"


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(Source(RETRY), backend=LocalBackend(2))


@pytest.mark.slow
def test_trigger_size_margin_matches_the_map(ev: Evaluator) -> None:
    m = outage_margin(ev, along="magnitude", replications=2, tol=0.01, criterion="stuck_at_end")
    assert m["start"] == 0.8 and m["ok_up_to"] is not None and m["locks_in_at"] is not None
    assert 0.78 - 0.01 <= m["ok_up_to"] < m["locks_in_at"] <= 0.8
    assert m["locks_in_at"] - m["ok_up_to"] <= 0.01


@pytest.mark.slow
def test_demand_margin_matches_the_map(ev: Evaluator) -> None:
    """At the scenario's trigger (80% for 10 s) it locks in at its own load; demand must fall,
    and 75% of it recovers."""
    m = outage_margin(ev, along="load", replications=2, tol=0.05, criterion="stuck_at_end")
    assert m["ok_up_to"] is not None and m["locks_in_at"] is not None
    assert 0.75 <= m["ok_up_to"] < m["locks_in_at"] <= 1.0
    assert m["margin"] < 0
