"""Decode stretches (many decode-only batch steps as one event) against one event per step.

Parity tests: the same inputs through both paths of `sim.des.llm.Replica` (the switch
`Replica.decode_stretches`) give the same decisions: the same counts, latencies, events and
series, bit for bit, except the fleet's busy time, whose float sum is added in another order
across replicas (equal within rounding). And the cost model's vectorised decode steps equal its
single steps bit for bit, since the engine's event times are sums of them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy
from sim_helpers import VALIDATION, scenario

from sim.costmodel import StepCost
from sim.des import simulate
from sim.des.llm import OK, FleetStats, Replica, Seq
from sim.des.router import Fleet
from sim.results import Results
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.scenario.services import FittedCost, LLMFleet, RooflineCost

ROOFLINE = {
    "type": "roofline",
    "gpu": {"tflops": 989, "hbm_gb_s": 3350, "memory_gb": 80, "mfu": 0.45, "mbu": 0.6},
    "model": {"total_params_b": 30.5, "active_params_b": 3.3, "layers": 48, "hidden": 2048, "kv_heads": 4,
              "head_dim": 128},
}
FITTED = {"type": "fitted", "base_s": 0.01, "per_prefill_token_s": 1e-5, "per_decode_seq_s": 1e-3}

# (scenario, overrides): each exercises a way a stretch starts, ends or is cut
CASES: dict[str, tuple[str, list[str]]] = {
    "feb8_peak": ("feb8_outage.yaml", ["run.start_hour=14", "run.duration_s=600", "faults=[]"]),
    "feb8_autoscaling": ("feb8_outage.yaml", [
        "run.start_hour=13", "run.duration_s=900", "faults=[]", "services.gateway.concurrency=72",
        "services.llm.autoscaling={min_replicas: 1, max_replicas: 3, target_utilisation: 0.7, interval_s: 30,"
        " cold_start_s: 120}"]),
    "demo_fault_slowdown": ("demo_fault.yaml", []),
    "cancel_on_timeout": ("demo_fault.yaml", ["clients.cancel_on_timeout=true"]),
    "kv_preemption": ("demo_fault.yaml", ["services.llm.kv_cache_tokens=600", "arrivals.rate_per_s=10"]),
    "no_chunked_prefill_least_kv": ("demo_fault.yaml", [
        "services.llm.chunked_prefill=false", "services.llm.routing=least_kv", "services.llm.replicas=3"]),
    "capacity_loss_and_outage": ("demo_fault.yaml", [
        "services.llm.routing=power_of_two", "services.llm.replicas=4",
        "faults=[{at_s: 40, duration_s: 20, target: llm, kind: capacity_loss, magnitude: 0.5},"
        " {at_s: 100, duration_s: 10, target: llm, kind: outage}]"]),
    "context_cost_round_robin": ("demo_fault.yaml", [
        "services.llm.routing=round_robin", "services.llm.cost_model.per_context_token_s=2e-7"]),
    "roofline_smoke": ("smoke.yaml", ["run.duration_s=300", "run.warmup_s=0"]),
    "roofline_no_chunked_prefill": ("smoke.yaml", ["run.duration_s=300", "run.warmup_s=0",
                                                   "services.llm.chunked_prefill=false"]),
}
CASES.update({f"validation_{p.stem}": (f"validation/{p.name}", []) for p in sorted(VALIDATION.glob("*.yaml"))})


def _run(name: str, stretches: bool, monkeypatch: pytest.MonkeyPatch) -> Results:
    path, sets = CASES[name]
    monkeypatch.setattr(Replica, "decode_stretches", stretches)
    return simulate(scenario(path, *sets))


def _same(a: Any, b: Any, where: str) -> None:
    """Equal bit for bit (NaN equal to NaN), walking dicts and lists."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True), where
    elif isinstance(a, float) and a != a:
        assert b != b, where
    else:
        assert a == b, (where, a, b)


@pytest.mark.parametrize("name", list(CASES))
def test_stretches_decide_exactly_as_one_event_per_step(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    per_step = _run(name, False, monkeypatch)
    stretched = _run(name, True, monkeypatch)
    busy = "llm_busy"
    if busy in per_step.series:
        np.testing.assert_allclose(stretched.series.pop(busy), per_step.series.pop(busy), rtol=1e-12, atol=1e-12)
    _same(per_step.summary, stretched.summary, "summary")
    _same(per_step.series, stretched.series, "series")
    _same(per_step.histograms, stretched.histograms, "histograms")
    _same(per_step.events, stretched.events, "events")
    assert per_step.summary["arrived"] > 0


# -- one replica, scripted: every way a stretch is cut ---------------------------------------------
class _CountingEnv(simpy.Environment):
    """Counts the events processed (to see that stretches do save events)."""

    processed = 0

    def step(self) -> None:
        self.processed += 1
        super().step()


def _scripted(stretches: bool, cost: dict[str, Any], kv_tokens: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """A replica pair under submits, cancels, a slowdown and a failure at random instants, with
    the KV cache and the fleet's counters read at random instants; returns (per sequence:
    outcome, first token and end times; the readings; events processed)."""
    Replica.decode_stretches = stretches
    env = _CountingEnv()
    fleet = Fleet(env, LLMFleet(replicas=2, max_num_seqs=6, kv_cache_tokens=kv_tokens, routing="least_kv",
                                cost_model=cost), np.random.default_rng(0))
    rng = np.random.default_rng(7)
    seqs: list[Seq] = []
    readings: list[tuple[Any, ...]] = []

    def clients():  # type: ignore[no-untyped-def]
        for _ in range(120):
            yield env.timeout(float(rng.exponential(0.4)))
            seqs.append(fleet.submit(int(rng.integers(20, 400)), int(rng.integers(5, 300))))
            if rng.random() < 0.15:  # a client gives up on a running or waiting call
                live = [s for s in seqs if s.state != "ended" and s.replica is not None]
                if live:
                    victim = live[int(rng.integers(len(live)))]
                    victim.replica.cancel(victim)  # type: ignore[union-attr]

    def operator():  # type: ignore[no-untyped-def]
        for wait_s, effect in ((9.3, FaultEffect(slowdown=3.0)), (5.1, NO_FAULT),
                               (7.7, FaultEffect(lost_fraction=0.5)), (2.0, NO_FAULT)):
            yield env.timeout(wait_s)
            fleet.set_effect(effect)

    def observer():  # type: ignore[no-untyped-def]
        st = fleet.stats
        while env.now < 80:
            yield env.timeout(float(rng.uniform(0.05, 0.6)))
            readings.append((env.now, st.steps, st.batch_seqs, st.decode_tokens, st.prefill_tokens,
                             st.preemptions, *(r.kv_used for r in fleet.replicas), *(r.load for r in fleet.replicas)))

    env.process(clients())
    env.process(operator())
    env.process(observer())
    env.run()
    ends = [(s.done.value, s.t_first, s.t_done) for s in seqs]
    return ends, readings, env.processed


@pytest.mark.parametrize("kv_tokens", [4000, 1000], ids=["kv_roomy", "kv_preempting"])
@pytest.mark.parametrize("cost", [FITTED, {**FITTED, "per_context_token_s": 3e-7}, ROOFLINE],
                         ids=["fitted", "fitted_context", "roofline"])
def test_cuts_and_reads_mid_stretch_match_one_event_per_step(cost: dict[str, Any], kv_tokens: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Replica, "decode_stretches", True)  # restored after the test
    per_step, read_per_step, events_per_step = _scripted(False, cost, kv_tokens)
    stretched, read_stretched, events_stretched = _scripted(True, cost, kv_tokens)
    assert stretched == per_step
    assert read_stretched == read_per_step
    assert {v for v, _, _ in per_step} >= {OK, "cancelled", "down"}
    assert (read_per_step[-1][5] > 0) == (kv_tokens < 2000)  # preemptions where the cache is small
    assert events_stretched < 0.6 * events_per_step  # the point of stretches


def test_a_lone_long_decode_is_a_few_events() -> None:
    env = _CountingEnv()
    rep = Replica(env, 0, LLMFleet(replicas=1, cost_model=FITTED), StepCost(FittedCost(**FITTED)), FleetStats())
    s = Seq(env, 100, 3000)
    rep.submit(s)
    env.run()
    assert s.done.value == OK and rep.step_no == 3000  # one prefill step (the first token), 2,999 decode steps
    assert rep.stats.steps == 3000 and rep.stats.decode_tokens == 3000  # the first token counts (sim.rules.tokens)
    assert env.processed < 10


# -- the cost model: vectorised decode steps equal single steps -------------------------------------
@pytest.mark.parametrize("spec", [FittedCost(**FITTED), FittedCost(**{**FITTED, "per_context_token_s": 1.7e-7}),
                                  RooflineCost.model_validate(ROOFLINE)], ids=["fitted", "fitted_context", "roofline"])
def test_decode_steps_equal_single_steps_bit_for_bit(spec: FittedCost | RooflineCost) -> None:
    cost = StepCost(spec)
    rng = np.random.default_rng(3)
    for steps in (1, 2, 15, 16, 17, 100, 4096):
        for _ in range(20):
            n, ctx, scale = int(rng.integers(1, 300)), int(rng.integers(0, 10**6)), float(rng.choice([1.0, 1.7, 30.0]))
            want = [scale * cost.step_s(0, n, ctx + i * n, ctx + i * n) for i in range(steps)]
            assert cost.decode_steps_s(n, ctx, steps, scale) == want
