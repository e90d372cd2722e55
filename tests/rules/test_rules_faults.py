"""Faults (`sim.rules.faults`): how faults in force combine and what capacity is left, and
parity — the same faults applied to the simulator's stack and to the reference stack leave the
same slots, the same replicas up and the same error chances."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from loadtest.stack.options import StackOptions
from loadtest.stack.state import Stack as RealStack
from sim.des.stack import StackModel as SimStack
from sim.rules.faults import FaultEffect, combine, session_kept, units_down
from sim.scenario import Fault, parse_scenario
from sim.streams import Streams

SCENARIO: dict[str, Any] = {
    "name": "faults",
    "arrivals": {"rate_per_s": 1},
    "workload": {"classes": {"c": {"probability": 1, "stages": [
        {"llm": {"prompt_tokens": {"type": "constant", "value": 4}, "output_tokens": {"type": "constant", "value": 2}}},
        {"tool": "small"}, {"tool": "big"}]}}},
    "services": {
        "gateway": {"concurrency": 10, "queue_limit": 5},
        "tools": {"small": {"concurrency": 3, "error_rate": 0.1}, "big": {"concurrency": 10}},
        "llm": {"replicas": 4, "max_num_seqs": 4, "kv_cache_tokens": 512,
                "backend": {"type": "local", "model": {"layers": 1, "hidden": 16, "heads": 2, "vocab": 64,
                                                       "max_context": 64}}},
    },
}

# faults in force together -> expected (gateway slots, small slots, big slots, llm replicas up, small error chance)
CASES = [
    ([], (10, 3, 10, 4, 0.1)),
    ([("big", "capacity_loss", 0.9)], (10, 3, 1, 4, 0.1)),  # 10 slots, 90% lost: 1 left
    ([("small", "capacity_loss", 0.5)], (10, 1, 10, 4, 0.1)),  # 3 slots, 50% lost: ceil(1.5) = 2 down
    ([("llm", "capacity_loss", 0.5), ("llm", "capacity_loss", 0.5)], (10, 3, 10, 1, 0.1)),  # 75% lost
    ([("small", "error_rate", 0.5)], (10, 3, 10, 4, 1 - 0.9 * 0.5)),  # compounds with the base rate
    ([("gateway", "capacity_loss", 0.25), ("big", "outage", 1.0)], (7, 3, 0, 4, 0.1)),
    ([("llm", "outage", 1.0)], (10, 3, 10, 0, 0.1)),
]


def test_combination_rules() -> None:
    e = combine([Fault(at_s=0, duration_s=1, target="x", kind="capacity_loss", magnitude=0.5),
                 Fault(at_s=0, duration_s=1, target="x", kind="capacity_loss", magnitude=0.5),
                 Fault(at_s=0, duration_s=1, target="x", kind="slowdown", magnitude=3),
                 Fault(at_s=0, duration_s=1, target="x", kind="slowdown", magnitude=2),
                 Fault(at_s=0, duration_s=1, target="x", kind="error_rate", magnitude=0.2)])
    assert e.lost_fraction == pytest.approx(0.75) and e.slowdown == 6 and e.error_rate == pytest.approx(0.2)
    assert e.error_with(0.5) == pytest.approx(1 - 0.5 * 0.8)
    assert [units_down(10, f) for f in (0, 0.05, 0.1, 0.9, 1.0)] == [0, 1, 1, 9, 10]
    assert FaultEffect(outage=True).units_up(7) == 0
    assert session_kept([0.5, 0.5]) == pytest.approx(0.25)


def _sim_state(faults: list[Fault]) -> tuple[Any, ...]:
    sc = parse_scenario(SCENARIO)
    st = SimStack(simpy.Environment(), sc, Streams(1))
    for f in faults:
        st.start_fault(f)
    small = st.tools["small"]
    assert st.gateway is not None and st.fleet is not None
    up = sum(1 for r in st.fleet.replicas if r.up)
    return (st.gateway.pool.capacity, small.pool.capacity, st.tools["big"].pool.capacity, up,
            small.effect.error_with(small.error_rate))


def _stack_state(faults: list[Fault], tmp: str) -> tuple[Any, ...]:
    sc = parse_scenario(SCENARIO)
    st = RealStack(sc, StackOptions(db_path=f"{tmp}/o.db", admin_token="x", torch_threads=1))
    for f in faults:
        st.faults.add(f.kind, f.target, f.magnitude, 60)
    llm: Any = st.llm
    gw = st.gateway.admission
    assert gw is not None
    small = st.tools["small"]
    return (gw.capacity, small.slots.capacity, st.tools["big"].slots.capacity, len(llm.up()),
            small.effect.error_with(small.spec.error_rate))


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_simulator_and_stack_apply_faults_alike(spec: list[tuple[str, str, float]], expected: tuple[Any, ...],
                                                tmp_path: Any) -> None:
    faults = [Fault(at_s=0, duration_s=60, target=t, kind=k, magnitude=m) for t, k, m in spec]  # type: ignore[arg-type]
    sim, real = _sim_state(faults), _stack_state(faults, str(tmp_path))
    assert sim[:4] == real[:4] == expected[:4]
    assert sim[4] == pytest.approx(real[4]) == pytest.approx(expected[4])


def test_the_first_replicas_go_down_on_both_sides(tmp_path: Any) -> None:
    f = Fault(at_s=0, duration_s=60, target="llm", kind="capacity_loss", magnitude=0.5)
    sc = parse_scenario(SCENARIO)
    sim = SimStack(simpy.Environment(), sc, Streams(1))
    sim.start_fault(f)
    assert sim.fleet is not None
    real = RealStack(sc, StackOptions(db_path=f"{tmp_path}/o.db", admin_token="x", torch_threads=1))
    real.faults.add(f.kind, f.target, f.magnitude, 60)
    llm: Any = real.llm
    assert [r.up for r in sim.fleet.replicas] == [not e.is_down() for e in llm.engines] == [False, False, True, True]
    assert np.isclose(real.faults.effect("llm").lost_fraction, 0.5)
