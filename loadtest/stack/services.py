"""Downstream services (auth and the tools) as async calls with limits, latency and errors.

A call goes: circuit breaker -> outage fault -> concurrency slot (waits at most `timeout_s`
or until the caller's deadline) -> latency (sampled, times any slowdown fault) -> the call's
own work -> injected error. Half of the injected errors strike *after* the work was done
(the effect happened, the answer was lost), as real timeouts do: callers must be idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from loadtest.stack.config import BreakerConfig, ServiceConfig
from loadtest.stack.faults import FaultBoard
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.overload import Admission, Rejected
from sim.dists import sampler

T = TypeVar("T")


class ServiceError(Exception):
    """A downstream call failed. `code`: breaker_open, outage, overloaded, timeout, error."""

    def __init__(self, service: str, code: str, retry_after_s: float = 1.0) -> None:
        super().__init__(f"{service}: {code}")
        self.service, self.code, self.retry_after_s = service, code, retry_after_s


class CircuitBreaker:
    """Closed -> open after `failure_threshold` consecutive failures -> after `open_s`
    seconds half-open: one probe call; its success closes, its failure reopens."""

    def __init__(self, cfg: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self._clock = cfg, clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self._probe_at = 0.0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "open" if self._clock() - self.opened_at < self.cfg.open_s else "half_open"

    def allow(self) -> float:
        """0.0 if a call may go ahead, else seconds until the breaker lets one through."""
        st = self.state
        if st == "closed":
            return 0.0
        if st == "open":
            return self.cfg.open_s - (self._clock() - self.opened_at)  # type: ignore[operator]
        now = self._clock()
        if self._probing and now - self._probe_at < self.cfg.open_s:  # a lost probe does not wedge it
            return 0.5
        self._probing, self._probe_at = True, now
        return 0.0

    def record(self, ok: bool) -> None:
        if ok:
            self.failures, self.opened_at, self._probing = 0, None, False
            return
        self.failures += 1
        if self._probing or self.failures >= self.cfg.failure_threshold:
            self.opened_at, self._probing = self._clock(), False


class Downstream:
    """One service instance the stack calls (auth, catalog, order, payment, ...)."""

    def __init__(self, name: str, cfg: ServiceConfig, faults: FaultBoard, metrics: StackMetrics,
                 rng: np.random.Generator) -> None:
        self.name, self.cfg, self.faults, self.metrics = name, cfg, faults, metrics
        self._rng = rng
        self._latency = sampler(cfg.latency, rng)
        self.breaker = CircuitBreaker(cfg.breaker) if cfg.breaker else None
        self.slots = Admission(self._capacity, queue_limit=None, deadline_drop=True)

    def _capacity(self) -> int:
        return int(self.cfg.concurrency * (1.0 - self.faults.capacity_lost(self.name)))

    async def call(self, work: Callable[[], Awaitable[T]], deadline: float | None = None) -> T:
        """Run `work` as this service; raise `ServiceError` on any failure.

        `deadline` is a `time.monotonic()` value; the call never runs past it.
        """
        if self.breaker and (wait := self.breaker.allow()) > 0:
            self.metrics.tool_calls.inc((self.name, "breaker_open"))
            raise ServiceError(self.name, "breaker_open", wait)
        if self.faults.outage(self.name):
            return self._fail("outage", 5.0)
        limit = time.monotonic() + self.cfg.timeout_s
        limit = min(limit, deadline) if deadline is not None else limit
        try:
            await self.slots.acquire(0, limit)
        except Rejected:
            return self._fail("timeout", self.slots.retry_after_s())
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(max(0.0, limit - t0)):
                return await self._run(work)
        except TimeoutError:
            return self._fail("timeout", 1.0)
        finally:
            self.slots.release(time.monotonic() - t0)

    async def _run(self, work: Callable[[], Awaitable[T]]) -> T:
        delay = self._latency() * self.faults.multiplier(self.name)
        if delay > 0:
            await asyncio.sleep(delay)
        p_err = self.cfg.error_rate + self.faults.extra_error_rate(self.name)
        roll = self._rng.random() if p_err > 0 else 1.0
        if roll < p_err / 2:
            return self._fail("error", 1.0)
        result = await work()
        if roll < p_err:
            return self._fail("error", 1.0)  # the effect happened; the caller never hears of it
        self.metrics.tool_calls.inc((self.name, "ok"))
        if self.breaker:
            self.breaker.record(True)
        return result

    def _fail(self, code: str, retry_after_s: float):  # type: ignore[no-untyped-def]
        self.metrics.tool_calls.inc((self.name, code))
        if self.breaker:
            self.breaker.record(False)
        raise ServiceError(self.name, code, retry_after_s)
