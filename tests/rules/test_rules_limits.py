"""Rate limits and circuit breakers: the rules as documented, and parity — the same requests at
the same times through the simulator's gateway/tool and the stack's give the same decisions."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import numpy as np
import pytest
import simpy

import loadtest.stack.gateway as stack_gateway
import loadtest.stack.services as stack_services
from loadtest.stack.errors import APIError
from loadtest.stack.faults import FaultBoard
from loadtest.stack.gateway import HttpGateway
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.services import Downstream, ServiceError
from sim.des.services import GatewayService, ToolService
from sim.rules.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from sim.rules.deadlines import Deadlines
from sim.rules.faults import FaultEffect
from sim.rules.ratelimit import TokenBucket
from sim.scenario import parse_scenario
from sim.scenario.services import CircuitBreaker as BreakerSpec
from sim.scenario.services import Gateway as GatewaySpec
from sim.scenario.services import Service


class Clock:
    """A settable `time` stand-in for the stack's modules."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


def test_token_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(rate_per_s=10, burst=2, now=0.0)
    assert b.take(0.0) == 0 and b.take(0.0) == 0
    assert b.take(0.0) == pytest.approx(0.1)
    assert b.take(0.1) == 0
    assert TokenBucket(5, 3, 0.0).take_many(0.0, 10) == 3


LIMITS = [
    {"global_per_s": 2.0, "burst": 3},
    {"per_user_per_s": 1.0, "per_user_burst": 2},
    {"global_per_s": 4.0, "per_user_per_s": 1.0, "per_user_burst": 2},
]
REQUESTS = [(0.0, "a"), (0.0, "a"), (0.0, "b"), (0.1, "a"), (0.2, "b"), (0.3, "c"), (0.5, "a"), (0.9, "a"),
            (1.2, "b"), (1.3, "b"), (1.3, "b"), (2.0, "a"), (2.0, "c"), (2.1, "c"), (3.5, "a")]


@pytest.mark.parametrize("limit", LIMITS)
def test_gateway_rate_limits_alike(limit: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = GatewaySpec(rate_limit=limit)  # type: ignore[arg-type]
    env = simpy.Environment()
    des = GatewayService(env, spec)
    buckets: dict[str, Any] = {}
    des_says = []
    for t, user in REQUESTS:
        env.run(until=t) if t > env.now else None
        if user not in buckets:
            buckets[user] = des.user_bucket()
        des_says.append(des.admit_rate(buckets[user]))
    clock = Clock()
    monkeypatch.setattr(stack_gateway, "time", types.SimpleNamespace(monotonic=clock.monotonic, time=clock.monotonic))
    sc = parse_scenario({"name": "t", "arrivals": {"rate_per_s": 1}, "services": {"gateway": spec.model_dump()},
                         "workload": {"classes": {"c": {"probability": 1, "stages": [{"tool": "x"}]}}}} |
                        {"services": {"gateway": spec.model_dump(), "tools": {"x": {}}}})
    gw = HttpGateway(sc, FaultBoard(["gateway", "x"]), StackMetrics(), np.random.default_rng(0))
    stack_says = []
    for t, user in REQUESTS:
        clock.now = t
        try:
            gw.rate_limit(user)
            stack_says.append(True)
        except APIError as e:
            assert e.status == 429
            stack_says.append(False)
    assert des_says == stack_says
    assert 0 < sum(des_says) < len(REQUESTS)  # the limit bit, and let some through


def test_breaker_closed_open_half_open_probe() -> None:
    cb = CircuitBreaker(BreakerSpec(failure_threshold=3, open_s=5))
    for _ in range(3):
        assert cb.allow(0.0) == 0
        cb.record(False, 0.0)
    assert cb.state(1.0) == OPEN and cb.allow(1.0) == pytest.approx(4)
    assert cb.state(6.0) == HALF_OPEN and cb.allow(6.0) == 0 and cb.allow(6.0) > 0  # one probe at a time
    cb.record(False, 6.5)  # the probe failed: open again
    assert cb.state(7.0) == OPEN and cb.allow(12.0) == 0
    cb.record(True, 12.1)
    assert cb.state(12.2) == CLOSED and cb.opened == 2
    lost = CircuitBreaker(BreakerSpec(failure_threshold=1, open_s=1))
    lost.record(False, 0.0)
    assert lost.allow(1.0) == 0 and lost.allow(1.5) > 0 and lost.allow(2.0) == 0  # a vanished probe does not wedge it


# (time, error?) of calls to a tool with a breaker (threshold 2, open 1 s); errors come from an
# error_rate fault switched on and off
CALLS = [(0.0, True), (0.1, True), (0.2, False), (0.5, False), (1.2, True), (1.3, False), (1.4, False),
         (2.5, False), (2.6, True), (2.7, True), (2.8, False), (4.0, False)]


def test_tool_breakers_decide_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = Service(concurrency=4, latency={"type": "constant", "value": 0.0},  # type: ignore[arg-type]
                   circuit_breaker=BreakerSpec(failure_threshold=2, open_s=1.0))
    env = simpy.Environment()
    des = ToolService(env, "pay", spec, np.random.default_rng(0))
    des_says = []
    for t, err in CALLS:
        env.run(until=t) if t > env.now else None
        des.set_effect(FaultEffect(error_rate=1.0 if err else 0.0))
        proc = env.process(des.call(0, float("inf")))
        env.run(until=env.now + 1e-9)
        des_says.append(proc.value)
    clock = Clock()
    monkeypatch.setattr(stack_services, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    board = FaultBoard(["pay"])
    tool = Downstream("pay", spec, board, StackMetrics(), np.random.default_rng(0), Deadlines(None, False, False))

    async def drive() -> list[str]:
        out = []
        for t, err in CALLS:
            clock.now = t
            tool._apply(FaultEffect(error_rate=1.0 if err else 0.0))
            try:
                await tool.call(_nothing)
                out.append("ok")
            except ServiceError as e:
                out.append({"breaker_open": "shed", "error": "error"}[e.code])
        return out

    assert asyncio.run(drive()) == des_says
    assert "shed" in des_says and "ok" in des_says


async def _nothing() -> None:
    return None
