"""Parity tests: the count forms of the shared rules that the fleet engine uses agree with the
per-request forms that the SimPy engine uses (same inputs through both)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from sim.costmodel import StepCost
from sim.fleet.split import systematic
from sim.rules.retry import RetryPolicy
from sim.rules.routing import ROUTERS, Router, make_router
from sim.scenario import Clients
from sim.scenario.services import FittedCost, GpuSpec, ModelSpec, RooflineCost


@pytest.mark.parametrize("cost", [
    FittedCost(base_s=0.025, per_prefill_token_s=3e-5, per_decode_seq_s=3e-4, per_context_token_s=1e-7),
    RooflineCost(gpu=GpuSpec(tflops=989, hbm_gb_s=3350, memory_gb=80, mfu=0.45, mbu=0.6),
                 model=ModelSpec(total_params_b=30.5, active_params_b=3.3, layers=48, hidden=2048, kv_heads=4,
                                 head_dim=128)),
])
def test_step_cost_array_form_equals_the_scalar_form(cost: object) -> None:
    c = StepCost(cost)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    p, d = rng.integers(0, 8192, 200), rng.integers(0, 128, 200)
    kv, att = rng.integers(0, 200_000, 200), rng.integers(0, 10**7, 200)
    arr = c.step_s_array(p, d, kv, att)
    one = [c.step_s(int(a), int(b), int(k), int(t)) for a, b, k, t in zip(p, d, kv, att, strict=True)]
    assert np.allclose(arr, one, rtol=1e-12)


@pytest.mark.parametrize("jitter", ["none", "full", "equal"])
def test_backoff_kernel_is_the_distribution_of_backoff_s(jitter: str) -> None:
    spec = Clients(max_attempts=4, backoff={"base_s": 0.7, "cap_s": 5, "multiplier": 2, "jitter": jitter})
    rng = random.Random(3)
    pol = RetryPolicy(spec, rng.random, lambda: 0.0)
    dt = 0.25
    for attempt in range(3):
        kern = np.asarray(pol.backoff_kernel(attempt, dt))
        draws = np.array([pol.backoff_s(attempt) for _ in range(20_000)])
        hist = np.bincount((draws / dt + 0.5).astype(int), minlength=len(kern))[: len(kern)] / len(draws)
        assert kern.sum() == pytest.approx(1.0)
        assert np.abs(hist - kern).max() < 0.02
        mean_k = (np.arange(len(kern)) * kern).sum() * dt
        assert mean_k == pytest.approx(draws.mean(), abs=dt / 2 + 0.02)


def test_retry_budget_count_form_lets_through_what_the_per_attempt_rule_does() -> None:
    spec = Clients(max_attempts=3, retry_budget_ratio=0.1)
    for firsts, prior in [(100, 0), (100, 5), (37, 3), (500, 49), (10, 0)]:
        a = RetryPolicy(spec, lambda: 0.5, lambda: 10.0)
        b = RetryPolicy(spec, lambda: 0.5, lambda: 10.0)
        a.sent_many(firsts, prior, 10.0)
        b.sent_many(firsts, prior, 10.0)
        allowed = a.budget_allows(1000, 10.0)
        one_by_one = 0
        for _ in range(1000):
            if b.refuse(1):
                break
            b.sent(1)
            one_by_one += 1
        assert allowed == one_by_one


def test_throttle_probability_is_the_per_attempt_refusal_rate() -> None:
    spec = Clients(adaptive_throttle_k=2.0)
    rng = random.Random(9)
    pol = RetryPolicy(spec, rng.random, lambda: 5.0)
    pol.answered_many("timeout", 300, 5.0)
    pol.answered_many("ok", 60, 5.0)
    p = pol.throttle_probability(5.0)
    assert 0 < p < 1
    hits = 0
    n = 20_000
    for _ in range(n):
        saved = pol.requests.value
        hits += pol.refuse(0)
        pol.requests.value = saved  # a refusal counts as a request: undo it to draw again at the same p
    assert hits / n == pytest.approx(p, abs=0.015)


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_spread_routes_a_batch_as_picks_one_by_one(name: str) -> None:
    for trial in range(100):
        rnd = random.Random(trial)
        loads = [rnd.randint(0, 30) for _ in range(rnd.randint(1, 12))]
        n = rnd.randint(0, 80)
        fast, slow = make_router(name), make_router(name)
        ua, ub = random.Random(trial), random.Random(trial)
        got = fast.spread(n, loads, ua.random)
        want = Router.spread(slow, n, loads, ub.random)
        assert got.sum() == n
        assert list(got) == list(want), (loads, n)


def test_systematic_split_keeps_every_request_and_the_mean() -> None:
    rng = np.random.default_rng(4)
    p = np.array([0.1, 0.25, 0.05, 0.6])
    n = rng.integers(0, 50, size=(2000,)).astype(float)
    parts = systematic(n, p, rng)
    assert np.array_equal(parts.sum(axis=1), n)
    assert (parts >= 0).all() and np.array_equal(parts, np.round(parts))
    assert np.allclose(parts.sum(axis=0) / n.sum(), p, atol=0.01)
    ones = systematic(np.ones(40_000), p, rng)  # one request: one exact draw from p
    assert np.allclose(ones.mean(axis=0), p, atol=0.01)
