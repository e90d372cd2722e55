"""Downstream services (auth and the tools) as async calls, as the scenario describes them
(`services.auth`, `services.tools.NAME`: concurrency, queue limit, latency, error rate,
circuit breaker), with the simulator's rules for everything they decide.

A call goes: outage (fail) -> circuit breaker (`sim.rules.breaker`; open: fail fast) ->
a concurrency slot (`sim.rules.admission`; a full queue sheds) -> latency (sampled, times the
slowdown in force) -> the call's own work -> error (the service's rate combined with faults,
`sim.rules.faults`). The caller's deadline stops the call only when the scenario's servers
learn of client timeouts (`sim.rules.deadlines`).

Half of the errors strike *after* the work was done (the effect happened, the answer was lost),
as real timeouts do (`sim.rules.faults.error_timing`, which the simulator's tools follow too),
so that exactly-once ordering is tested for real.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from loadtest.stack.faults import FaultBoard
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.overload import Admission, Rejected
from sim.dists import sampler
from sim.rules.breaker import CircuitBreaker
from sim.rules.deadlines import Deadlines
from sim.rules.faults import AFTER, BEFORE, NO_ERROR, NO_FAULT, FaultEffect, error_timing
from sim.scenario.services import Service

T = TypeVar("T")


class ServiceError(Exception):
    """A downstream call failed. `code`: breaker_open, outage, overloaded, timeout, error."""

    def __init__(self, service: str, code: str, retry_after_s: float = 1.0) -> None:
        super().__init__(f"{service}: {code}")
        self.service, self.code, self.retry_after_s = service, code, retry_after_s


class Downstream:
    """One service the stack calls (auth, catalog, order, payment, ...)."""

    def __init__(self, name: str, spec: Service, faults: FaultBoard, metrics: StackMetrics,
                 rng: np.random.Generator, deadlines: Deadlines) -> None:
        self.name, self.spec, self.metrics = name, spec, metrics
        self._rng = rng
        self._latency = sampler(spec.latency, rng)
        self.breaker = CircuitBreaker(spec.circuit_breaker) if spec.circuit_breaker else None
        self.slots = Admission(self.slots_of(spec), spec.queue_limit, deadline_drop=deadlines.service_drops(name))
        self.honour_deadlines = deadlines.service_drops(name)  # the queue drops expired waiters
        self.cancel_running = deadlines.servers_cancel()  # and a running call stops at the deadline
        self.effect: FaultEffect = NO_FAULT
        faults.on_change(name, self._apply)

    @staticmethod
    def slots_of(spec: Service) -> int:
        """Slots of a real pool: `concurrency`, or a fluid pool's `servers` rounded up (the stack
        cannot run a fraction of a server: loadtest/stack/README.md)."""
        return max(1, math.ceil(spec.servers)) if spec.servers is not None else spec.concurrency

    def _apply(self, effect: FaultEffect) -> None:
        self.effect = effect
        self.slots.set_capacity(effect.units_up(self.slots_of(self.spec)))
        if effect.outage:
            self.slots.fail_waiting()

    async def call(self, work: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """Run `work` as this service; raise `ServiceError` on any failure.
        `deadline` is a `time.monotonic()` value, honoured as the scenario says."""
        deadline = deadline if self.honour_deadlines else None
        if self.effect.outage:
            return self._fail("outage", 5.0)
        if self.breaker and (wait := self.breaker.allow(time.monotonic())) > 0:
            self.metrics.tool_calls.inc((self.name, "breaker_open"))
            raise ServiceError(self.name, "breaker_open", wait)
        try:
            await self.slots.acquire(0, deadline)
        except Rejected as r:
            code = "timeout" if r.reason == "deadline" else "outage" if r.reason == "down" else "overloaded"
            return self._fail(code, self.slots.retry_after_s())
        t0 = time.monotonic()
        try:
            if deadline is None or not self.cancel_running:
                return await self._run(work)
            async with asyncio.timeout(max(0.0, deadline - t0)):
                return await self._run(work)
        except TimeoutError:
            return self._fail("timeout", 1.0)
        finally:
            self.slots.release(time.monotonic() - t0)

    async def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        effect = self.effect
        delay = self._latency() * effect.slowdown
        if delay > 0:
            await asyncio.sleep(delay)
        p_err = effect.error_with(self.spec.error_rate)
        timing = error_timing(p_err, float(self._rng.random())) if p_err > 0 else NO_ERROR
        if timing == BEFORE:
            return self._fail("error", 1.0)
        result = await work()
        if timing == AFTER:
            return self._fail("error", 1.0)  # the effect happened; the caller never hears of it
        self.metrics.tool_calls.inc((self.name, "ok"))
        if self.breaker:
            self.breaker.record(True, time.monotonic())
        return result

    def _fail(self, code: str, retry_after_s: float):  # type: ignore[no-untyped-def]
        self.metrics.tool_calls.inc((self.name, code))
        if self.breaker and code == "error":  # the breaker counts served calls, as in the simulator
            self.breaker.record(False, time.monotonic())
        raise ServiceError(self.name, code, retry_after_s)
