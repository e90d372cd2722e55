"""Routing (`sim.rules.routing`): each policy as documented, and parity — the same replica
states and the same draws through the simulator's fleet and the stack's LLM pick the same
replica, round after round."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from loadtest.stack.options import StackOptions
from loadtest.stack.state import Stack as RealStack
from sim.des.stack import StackModel as SimStack
from sim.rules.routing import ROUTERS, make_router
from sim.scenario import parse_scenario
from sim.streams import Streams


class Replica:
    def __init__(self, load: int, kv: int, cap: int = 100) -> None:
        self.load, self.kv_used_tokens, self.kv_capacity_tokens = load, kv, cap


def draws(*u: float) -> Any:
    it: Iterator[float] = iter(u)
    return lambda: next(it)


@pytest.mark.parametrize(("policy", "expected"), [("jsq", 1), ("least_kv", 2), ("round_robin", 0), ("random", 2)])
def test_each_policy_picks_as_documented(policy: str, expected: int) -> None:
    reps = [Replica(5, 10), Replica(1, 90), Replica(3, 5)]
    assert make_router(policy).pick(reps, draws(0.9)) == expected


def test_round_robin_starts_at_the_first_and_power_of_two_draws_two_distinct() -> None:
    rr = make_router("round_robin")
    reps = [Replica(0, 0)] * 3
    assert [rr.pick(reps, draws()) for _ in range(4)] == [0, 1, 2, 0]
    p2 = make_router("power_of_two")
    two = [Replica(9, 0), Replica(0, 0)]
    # u = 0.1 and 0.1 would be the same replica with replacement; distinct draws compare both
    assert p2.pick(two, draws(0.1, 0.1)) == 1
    assert p2.pick([Replica(3, 0), Replica(3, 0), Replica(1, 0)], draws(0.0, 0.0)) == 0  # a tie: the first
    with pytest.raises(ValueError, match="routing"):
        make_router("fastest")


SCENARIO: dict[str, Any] = {
    "name": "routing", "arrivals": {"rate_per_s": 1},
    "workload": {"classes": {"c": {"probability": 1, "stages": [
        {"llm": {"prompt_tokens": {"type": "constant", "value": 4}, "output_tokens": {"type": "constant", "value": 2}}}]}}},
    "services": {"llm": {"replicas": 4, "max_num_seqs": 4, "kv_cache_tokens": 512,
                         "backend": {"type": "local", "model": {"layers": 1, "hidden": 16, "heads": 2, "vocab": 64,
                                                                "max_context": 64}}}},
}
# per round: each replica's (load, KV tokens used)
ROUNDS = [[(0, 0)] * 4, [(3, 96), (1, 384), (1, 16), (2, 0)], [(2, 64), (2, 32), (5, 16), (2, 48)],
          [(0, 16), (0, 0), (0, 32), (0, 0)], [(7, 0), (6, 0), (6, 0), (8, 0)]]


@pytest.mark.parametrize("policy", sorted(ROUTERS))
def test_simulator_and_stack_route_alike(policy: str, tmp_path: Any) -> None:
    sc = parse_scenario(SCENARIO | {"services": {"llm": SCENARIO["services"]["llm"] | {"routing": policy}}})
    sim = SimStack(__import__("simpy").Environment(), sc, Streams(1))
    real = RealStack(sc, StackOptions(db_path=f"{tmp_path}/o.db", admin_token="x", torch_threads=1))
    assert sim.fleet is not None
    llm: Any = real.llm
    u = [0.12, 0.87, 0.55, 0.31, 0.99, 0.02, 0.64, 0.45, 0.77, 0.2]
    sim.fleet._uniform = draws(*u)  # type: ignore[method-assign]
    llm._uniform = draws(*u)
    sim_picks, real_picks = [], []
    held: list[list[int]] = [[] for _ in llm.engines]
    for loads in ROUNDS:
        for i, (r, e, (load, kv)) in enumerate(zip(sim.fleet.replicas, llm.engines, loads, strict=True)):
            r.n_waiting, r.kv_used = load, kv  # the simulator's replica: waiting sequences, KV held
            e.submitted, e.done = load, 0  # the stack's engine: submitted and not finished
            e.pool.release(held[i])
            held[i] = e.pool.allocate(e.pool.blocks_for(kv)) if kv else []
            assert (r.load, r.kv_used_tokens, r.kv_capacity_tokens) == (e.load, e.kv_used_tokens, e.kv_capacity_tokens)
        sim_picks.append(sim.fleet._choose().idx)  # type: ignore[union-attr]
        real_picks.append(llm.choose().index)
    assert sim_picks == real_picks
