"""Deadlines (`sim.rules.deadlines`): which servers learn a client's deadline, and parity — a tool
with a server-side request timeout (`deadline_drop`) drops a call whose deadline passed while it
queued, in the simulator and in the stack alike; without it both serve the call late."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
import simpy

from loadtest.http_commands import deadline_header
from loadtest.stack.faults import FaultBoard
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.services import Downstream, ServiceError
from sim.des.services import ToolService
from sim.rules.deadlines import Deadlines
from sim.scenario import parse_scenario
from sim.scenario.services import Service

BASE: dict[str, Any] = {
    "name": "d", "arrivals": {"rate_per_s": 1}, "clients": {"timeout_s": 5},
    "workload": {"classes": {"c": {"probability": 1, "stages": [{"tool": "t"}]}}},
    "services": {"tools": {"t": {}}},
}


def test_who_learns_the_deadline() -> None:
    plain = Deadlines.of(parse_scenario(BASE))
    assert not plain.sent and not plain.service_drops("t")
    tool = parse_scenario(BASE | {"services": {"tools": {"t": {"deadline_drop": True}}}})
    assert Deadlines.of(tool).service_drops("t") and not Deadlines.of(tool).servers_cancel()
    assert deadline_header(tool) == {"X-Request-Timeout": "5"}  # the load test tells the server
    cancel = Deadlines.of(parse_scenario(BASE | {"clients": {"timeout_s": 5, "cancel_on_timeout": True}}))
    assert cancel.service_drops("t") and cancel.servers_cancel() and cancel.gateway_drops()


def _des(drop: bool) -> list[str]:
    env = simpy.Environment()
    spec = Service(concurrency=1, latency={"type": "constant", "value": 0.2}, deadline_drop=drop)  # type: ignore[arg-type]
    tool = ToolService(env, "t", spec, np.random.default_rng(0))
    first = env.process(tool.call(0, 10.0))
    late = env.process(tool.call(0, 0.05))  # waits behind the first; its deadline passes at 0.05 s
    env.run()
    return [first.value, late.value]


async def _stack(drop: bool) -> list[str]:
    spec = Service(concurrency=1, latency={"type": "constant", "value": 0.2}, deadline_drop=drop)  # type: ignore[arg-type]
    d = Deadlines(5.0, False, False, frozenset({"t"}) if drop else frozenset())
    tool = Downstream("t", spec, FaultBoard(["t"]), StackMetrics(), np.random.default_rng(0), d)
    loop = asyncio.get_running_loop()

    async def call(deadline_in: float) -> str:
        try:
            await tool.call(_nothing, loop.time() + deadline_in)
            return "ok"
        except ServiceError as e:
            return "shed" if e.code == "timeout" else e.code

    first = asyncio.create_task(call(10.0))
    await asyncio.sleep(0)
    return list(await asyncio.gather(first, call(0.05)))


async def _nothing() -> None:
    return None


@pytest.mark.parametrize("drop", [True, False])
def test_a_server_side_request_timeout_drops_alike(drop: bool) -> None:
    des, stack = _des(drop), asyncio.run(_stack(drop))
    assert des == stack == (["ok", "shed"] if drop else ["ok", "ok"])
