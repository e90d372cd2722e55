"""The outage scenarios: metastable without mitigation, recovered with one that works; load
shedding keeps goodput near capacity (Google SRE failover case)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.campaign import analyse, load_with_overlay
from sim.des import simulate

ROOT = Path(__file__).resolve().parents[2]
FEB8 = ROOT / "scenarios" / "feb8_outage.yaml"
MITIGATIONS = ROOT / "scenarios" / "mitigations"
SHORT = ["run.duration_s=19800"]  # 12:00-17:30: the trigger, the peak, and 1.5 h after it


@pytest.fixture(scope="module")
def feb8() -> dict:
    sc = load_with_overlay(FEB8, None, SHORT)
    return analyse(simulate(sc), scenario=sc)


def test_feb8_locks_in_after_the_trigger(feb8: dict) -> None:
    assert feb8["onset_s"] is not None and 6600 <= feb8["onset_s"] <= 10800  # 13:50-15:00
    assert feb8["trigger"] == "faults+demand"  # the peak passed after the last fault
    assert feb8["stuck_at_end"] and feb8["metastable"]
    assert feb8["down_after_trigger_s"] >= 3000
    assert feb8["logins_per_command_degraded"] > 0.5  # the login storm: sessions dropped after timeouts
    assert feb8["attempts_per_command_degraded"] > 2.5  # retries sustain it
    assert feb8["work_per_good_degraded"] > 20  # admitted work per useful result


def test_feb8_recovers_with_lifo_at_the_gateway() -> None:
    sc = load_with_overlay(FEB8, MITIGATIONS / "gateway_lifo.yaml", SHORT)
    a = analyse(simulate(sc), scenario=sc)
    assert not a["stuck_at_end"] and not a["metastable"]
    assert a["goodput_fraction"] > 0.9


def test_every_mitigation_overlay_loads() -> None:
    names = sorted(p.stem for p in MITIGATIONS.glob("*.yaml"))
    assert names == ["adaptive_throttle", "autoscaling", "backoff_jitter", "circuit_breakers", "deadline_drop",
                     "gateway_lifo", "priority_shedding", "retry_budget"]
    for p in MITIGATIONS.glob("*.yaml"):
        load_with_overlay(FEB8, p)


def _goodput(sets: list[str]) -> float:
    sc = load_with_overlay(ROOT / "scenarios" / "sre_failover.yaml", None, sets)
    return float(simulate(sc).summary["goodput_per_s"])


def test_load_shedding_keeps_goodput_near_capacity() -> None:
    """1,200 QPS offered to a 1,000 QPS survivor: shedding keeps ~1,000 QPS of good answers,
    an unbounded FIFO queue falls well below."""
    shed = _goodput(["services.gateway.queue_limit=200", "services.gateway.deadline_drop=true"])
    none = _goodput([])
    assert shed > 900
    assert none < 0.5 * shed
