"""The shared host CPU (`services.host`, `sim.des.host.HostCpu`): processor sharing, checked
against hand-worked cases and M/M/1-PS theory; and what it does to a scenario's LLM fleet."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.des import simulate
from sim.des.host import HostCpu
from sim.scenario import parse_scenario
from sim.stats import mean_ci


def _finish_times(cores: float, jobs: list[tuple[float, float]]) -> list[float]:
    """Jobs (start, work) on a HostCpu; the time each ends."""
    env = simpy.Environment()
    cpu = HostCpu(env, cores)
    ends = [0.0] * len(jobs)

    def start(i: int, work: float):  # type: ignore[no-untyped-def]
        yield env.timeout(jobs[i][0])
        yield cpu.work(work)
        ends[i] = env.now

    for i, (_, w) in enumerate(jobs):
        env.process(start(i, w))
    env.run()
    return ends


def test_jobs_share_one_core_and_finish_in_order_of_work() -> None:
    # 1 s and 3 s together: both at half speed until 2 s (the short one done), then full speed
    assert _finish_times(1, [(0, 1), (0, 3)]) == pytest.approx([2.0, 4.0])
    # a job alone runs at full speed; one that joins at 0.5 s halves it from then on
    assert _finish_times(1, [(0, 1), (0.5, 1)]) == pytest.approx([1.5, 2.0])


def test_more_cores_than_jobs_means_no_sharing() -> None:
    assert _finish_times(2, [(0, 1), (0, 3)]) == pytest.approx([1.0, 3.0])
    # three jobs on two cores: each at 2/3 speed
    assert _finish_times(2, [(0, 1), (0, 1), (0, 1)]) == pytest.approx([1.5, 1.5, 1.5])


def _ps_mean_sojourn_s(seed: int, n: int = 4000) -> float:
    """Mean sojourn (after 10% warm-up) of Poisson(0.5) jobs of Exp(1) work on one PS core."""
    rng = np.random.default_rng(seed)
    gaps, works = rng.exponential(2.0, n), rng.exponential(1.0, n)
    env = simpy.Environment()
    cpu = HostCpu(env, 1.0)
    soj: list[float] = []

    def job(t0: float, w: float):  # type: ignore[no-untyped-def]
        yield cpu.work(w)
        soj.append(env.now - t0)

    def source():  # type: ignore[no-untyped-def]
        for g, w in zip(gaps, works, strict=True):
            yield env.timeout(g)
            env.process(job(env.now, w))

    env.process(source())
    env.run()
    return float(np.mean(soj[n // 10:]))


def test_mm1_processor_sharing_mean_sojourn_matches_theory() -> None:
    """Theory: M/M/1-PS has the mean sojourn of M/M/1, 1 / (mu - lambda) = 2 s at lambda 0.5, mu 1;
    the 95% interval over 20 replications must cover it."""
    ci = mean_ci([_ps_mean_sojourn_s(seed) for seed in range(20)])
    assert ci["low"] <= 2.0 <= ci["high"], ci


SCENARIO = {
    "name": "host", "run": {"duration_s": 60, "interval_s": 5, "seed": 3},
    "arrivals": {"rate_per_s": 20},
    "workload": {"classes": {"chat": {"probability": 1.0, "stages": [
        {"llm": {"prompt_tokens": {"type": "constant", "value": 32}, "output_tokens": {"type": "constant", "value": 8}}}]}}},
    "services": {"llm": {"replicas": 2, "max_num_seqs": 8, "routing": "round_robin",
                         "cost_model": {"type": "fitted", "base_s": 0.004, "per_prefill_token_s": 0.0,
                                        "per_decode_seq_s": 0.0}}},
}


def _e2e_p50(host: dict | None) -> float:  # type: ignore[type-arg]
    data = {**SCENARIO, "services": {**SCENARIO["services"], **({"host": host} if host else {})}}
    return float(simulate(parse_scenario(data)).summary["classes"]["chat"]["e2e"]["p50"])


def test_replicas_on_one_shared_core_are_slower_than_on_their_own() -> None:
    alone = _e2e_p50(None)
    # 8 steps of 4 ms: 32 ms on its own; on one core with the other replica's steps it takes longer
    assert alone == pytest.approx(0.032, rel=0.03)
    shared = _e2e_p50({"cores": 1})
    assert shared > 1.15 * alone
    # two cores for two replicas: as if on their own
    assert _e2e_p50({"cores": 2}) == pytest.approx(alone, rel=0.03)
    # CPU per request and per token outside the steps: later still
    assert _e2e_p50({"cores": 1, "request_cpu_s": 0.005, "token_cpu_s": 0.001}) > shared + 0.005


def test_chat_ttft_counts_the_gateway_queue_and_agent_ttft_does_not() -> None:
    """`sim.rules.calls`: a chat client times its first token from its send (the gateway's queue
    counts), an agent command's LLM calls from their submission. Commands far apart queue
    nowhere and both agree; packed together on one gateway slot, chat's TTFT grows by the wait
    there while the agent class's per-call TTFT stays the engine's."""
    chat = SCENARIO["workload"]["classes"]["chat"]["stages"]  # type: ignore[index]
    services = {**SCENARIO["services"], "gateway": {"concurrency": 1, "queue_limit": 1000},  # type: ignore[dict-item]
                "tools": {"catalog": {"concurrency": 100, "latency": {"type": "constant", "value": 0.001}}}}

    def ttft_p50(cls: str, stages: list, rate: float) -> float:  # type: ignore[type-arg]
        data = {**SCENARIO, "arrivals": {"rate_per_s": rate}, "services": services,
                "workload": {"classes": {cls: {"probability": 1.0, "stages": stages}}}}
        return float(simulate(parse_scenario(data)).summary["classes"][cls]["ttft"]["p50"])

    alone = ttft_p50("chat", chat, 1.0)
    assert alone == pytest.approx(0.004, rel=0.05)  # one 4 ms prefill step
    # 30 commands/s of about 32 ms each on one gateway slot (96% busy): chat waits there
    assert ttft_p50("chat", chat, 30.0) > 3 * alone
    assert ttft_p50("agent", [*chat, {"tool": "catalog"}], 30.0) == pytest.approx(alone, rel=0.05)
