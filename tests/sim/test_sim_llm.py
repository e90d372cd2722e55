"""LLM replicas with continuous batching: KV-cache bounds, preemption, batch limits, and the
cost model's economics (tokens per second rise with the batch)."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.des.llm import OK, Replica
from sim.des.router import Fleet
from sim.scenario.services import LLMFleet

ROOFLINE = {
    "type": "roofline",
    "gpu": {"tflops": 989, "hbm_gb_s": 3350, "memory_gb": 80, "mfu": 0.45, "mbu": 0.6},
    "model": {"total_params_b": 30.5, "active_params_b": 3.3, "layers": 48, "hidden": 2048, "kv_heads": 4,
              "head_dim": 128},
}


def _fleet(**spec) -> tuple[simpy.Environment, Fleet]:  # type: ignore[no-untyped-def]
    env = simpy.Environment()
    return env, Fleet(env, LLMFleet(**{"routing": "round_robin", **spec}), np.random.default_rng(0))


def _watch(r: Replica, seen: dict) -> None:  # type: ignore[type-arg]
    """Check the replica's invariants after every scheduling decision."""
    inner = r._iterate

    def checked() -> None:
        inner()
        live = len(r.prefilling) + r.n_dec
        seen["max_kv"] = max(seen.get("max_kv", 0), r.kv_used)
        seen["max_live"] = max(seen.get("max_live", 0), live)
        assert r.kv_used >= 0 and r.n_dec >= 0 and r.dec_ctx >= 0
        assert r.n_waiting == sum(1 for s in r.waiting if s.state == "waiting")
        if live > 1:  # only a lone sequence may exceed the cache (one huge prompt)
            assert r.kv_used <= r.kv_cap, (r.kv_used, r.kv_cap)
        assert live <= r.spec.max_num_seqs

    r._iterate = checked  # type: ignore[method-assign]


def _submit_all(env: simpy.Environment, fleet: Fleet, jobs: list[tuple[float, int, int]],
                until: float | None = None) -> list:  # type: ignore[type-arg]
    seqs: list = []  # type: ignore[type-arg]

    def go(at: float, p: int, o: int):  # type: ignore[no-untyped-def]
        yield env.timeout(at)
        seqs.append(fleet.submit(p, o))

    for j in jobs:
        env.process(go(*j))
    env.run(until=until)
    return seqs


def test_kv_cache_bounded_and_preemption_when_small() -> None:
    env, fleet = _fleet(replicas=2, max_num_seqs=32, max_batched_tokens=2048, kv_cache_tokens=3000,
                        cost_model={"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5,
                                    "per_decode_seq_s": 1e-3})
    seen: dict = {}  # type: ignore[type-arg]
    for r in fleet.replicas:
        _watch(r, seen)
    rng = np.random.default_rng(1)
    jobs = [(float(t), int(p), int(o)) for t, p, o in
            zip(np.sort(rng.uniform(0, 20, 300)), rng.integers(50, 400, 300), rng.integers(50, 600, 300), strict=True)]
    seqs = _submit_all(env, fleet, jobs)
    assert all(s.done.value == OK for s in seqs)  # preempted work is recomputed, never lost
    assert fleet.stats.preemptions > 0
    assert seen["max_kv"] <= 3000 and seen["max_live"] > 1
    assert all(r.kv_used == 0 and r.load == 0 for r in fleet.replicas)
    assert fleet.stats.decode_tokens >= sum(o for _, _, o in jobs) - len(jobs)  # first tokens come from prefill


def test_no_preemption_with_a_large_cache() -> None:
    env, fleet = _fleet(replicas=1, max_num_seqs=8, kv_cache_tokens=10**6,
                        cost_model={"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5,
                                    "per_decode_seq_s": 1e-3})
    seen: dict = {}  # type: ignore[type-arg]
    _watch(fleet.replicas[0], seen)
    seqs = _submit_all(env, fleet, [(0.1 * i, 200, 100) for i in range(50)])
    assert all(s.done.value == OK for s in seqs)
    assert fleet.stats.preemptions == 0 and seen["max_live"] == 8


def test_one_huge_prompt_runs_alone() -> None:
    """A prompt larger than the cache is admitted into an empty replica (the documented case)."""
    env, fleet = _fleet(replicas=1, kv_cache_tokens=1000,
                        cost_model={"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5,
                                    "per_decode_seq_s": 1e-3})
    # bounded: a replica that preempted and recomputed the lone huge prompt for ever never finishes it
    seqs = _submit_all(env, fleet, [(0.0, 5000, 10), (0.0, 100, 10)], until=1000)
    assert [s.done.triggered and s.done.value for s in seqs] == [OK, OK]
    assert fleet.stats.preemptions == 0
    assert seqs[1].t_first >= seqs[0].t_done  # the small one waits for room


def test_decode_tokens_per_second_rise_with_the_batch() -> None:
    def throughput(batch: int) -> float:
        env, fleet = _fleet(replicas=1, max_num_seqs=256, cost_model=ROOFLINE)
        _submit_all(env, fleet, [(0.0, 500, 400) for _ in range(batch)])
        return fleet.stats.decode_tokens / env.now

    rates = [throughput(b) for b in (1, 8, 64)]
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] > 5 * rates[0]  # decode is memory-bound: a batch reads the weights once per step


def test_ttft_and_completion_times_are_ordered() -> None:
    env, fleet = _fleet(replicas=1, max_num_seqs=4, cost_model=ROOFLINE)
    seqs = _submit_all(env, fleet, [(0.0, 1000, 50) for _ in range(8)])
    for s in seqs:
        assert 0 < s.t_first <= s.t_done
    # only 4 fit: the last four start after the first ones finish
    assert min(s.t_first for s in seqs[4:]) >= min(s.t_done for s in seqs[:4]) - 1e-12


@pytest.mark.parametrize("routing", ["round_robin", "random", "jsq", "power_of_two", "least_kv"])
def test_every_routing_policy_serves_everything(routing: str) -> None:
    env, fleet = _fleet(replicas=3, max_num_seqs=4, routing=routing, kv_cache_tokens=5000,
                        cost_model={"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5,
                                    "per_decode_seq_s": 1e-3})
    seqs = _submit_all(env, fleet, [(0.05 * i, 300, 50) for i in range(100)])
    assert all(s.done.value == OK for s in seqs)
    assert {s.replica.idx for s in seqs} == {0, 1, 2}


def test_cancelled_waiting_sequences_leave_the_queue_count_at_once() -> None:
    """Routing (jsq) and the queue limit see live sequences only, not cancelled ones still in the deque."""
    env, fleet = _fleet(replicas=1, max_num_seqs=1, queue_limit=4,
                        cost_model={"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5,
                                    "per_decode_seq_s": 1e-3})
    r = fleet.replicas[0]
    seqs = [fleet.submit(100, 1000)]
    env.run(until=0.1)  # it runs (for about 11 s)
    seqs += [fleet.submit(100, 1000) for _ in range(4)]  # four wait
    env.run(until=0.5)
    assert r.n_waiting == 4 and fleet.queue_len() == 4 and r.load == 5
    for s in seqs[1:4]:  # the client gave up on three waiting calls
        r.cancel(s)
    assert r.n_waiting == 1 and fleet.queue_len() == 1 and r.load == 2
    more = [fleet.submit(100, 10) for _ in range(3)]
    assert all(not s.done.triggered for s in more)  # room in the queue again: not shed
    env.run()
    assert [s.done.value for s in seqs] == [OK, "cancelled", "cancelled", "cancelled", OK]
    assert all(s.done.value == OK for s in more) and r.n_waiting == 0 and r.load == 0
