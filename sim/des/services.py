"""Auth, tools and the gateway as the simulator sees them: pools of servers with latency,
errors, faults, circuit breakers and token-bucket rate limits."""

from __future__ import annotations

import math

import numpy as np
import simpy

from sim.des.pool import DOWN, EVICTED, EXPIRED, GRANTED, STALE, Pool
from sim.des.pool import SHED as POOL_FULL
from sim.dists import sampler
from sim.rules.admission import adaptive_of
from sim.rules.breaker import CircuitBreaker
from sim.rules.faults import AFTER, BEFORE, NO_ERROR, NO_FAULT, FaultEffect, error_timing
from sim.rules.inventory import Stock
from sim.rules.outcomes import ERROR, OK, REJECTED, SHED, TIMEOUT
from sim.rules.ratelimit import RateLimiter, TokenBucket
from sim.scenario.services import Gateway, Service

__all__ = ["ERROR", "OK", "REJECTED", "SHED", "TIMEOUT", "GatewayService", "ToolService", "Uniforms"]
# why a queued request did not get a server, as the client sees it
_REFUSED = {EXPIRED: SHED, EVICTED: SHED, STALE: SHED, DOWN: ERROR, POOL_FULL: SHED}


class Uniforms:
    """Fast U(0,1) draws from one stream, pre-drawn in blocks."""

    __slots__ = ("_rng", "_buf")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf: list[float] = []

    def __call__(self) -> float:
        if not self._buf:
            self._buf = self._rng.random(4096).tolist()
        return self._buf.pop()


class Faulted:
    """A service that faults change (`sim.rules.faults`): slots up, slowdown, extra errors,
    outage. Subclasses have a `pool` and a `spec` with `concurrency`."""

    pool: Pool
    spec: Service | Gateway

    def __init__(self) -> None:
        self.effect: FaultEffect = NO_FAULT

    @property
    def outage(self) -> bool:
        return self.effect.outage

    def set_effect(self, effect: FaultEffect) -> None:
        """Apply the faults in force: the slots left serve; an outage fails the queue at once."""
        self.effect = effect
        self.pool.set_capacity(effect.units_up(self.spec.concurrency))
        if effect.outage:
            self.pool.fail_waiting()


class FluidQueue:
    """A pool of many servers seen from a scaled cell (`Service.servers`, possibly fractional): a
    call reserves its work on the pool at `servers` server-seconds per second, FIFO, and waits
    until the work queued ahead of it is done. It keeps the counters and integrals of `Pool` that
    the engine samples (busy = work done; capacity = servers)."""

    def __init__(self, env: simpy.Environment, servers: float) -> None:
        self.env, self.servers, self.capacity = env, servers, servers
        self.free_at = 0.0  # when the work reserved so far is done
        self.waiting = self.granted = self.queued = 0
        self.wait_s = 0.0
        self._reserved = self._occ = self._cap_area = 0.0
        self._last = 0.0

    def reserve(self, work_s: float) -> float:
        """Queue `work_s` server-seconds; returns the wait before the call's own service starts."""
        now = self.env.now
        self._tick()
        start = max(now, self.free_at)
        self.free_at = start + work_s / self.capacity if self.capacity > 0 else math.inf
        self._reserved += work_s
        self.granted += 1
        wait = start - now
        if wait > 0:
            self.queued += 1
            self.wait_s += wait
        return wait

    def start_at(self) -> float:
        """When a call reserving work now would start its service."""
        return max(self.env.now, self.free_at)

    def set_servers(self, servers: float) -> None:
        """Servers up after a fault; work already queued keeps the start times it was given."""
        self._tick()
        self.capacity = max(0.0, servers)

    def _tick(self) -> None:
        now = self.env.now
        self._cap_area += self.capacity * (now - self._last)
        self._last = now

    def busy_area(self) -> tuple[float, float]:
        self._tick()
        backlog = max(0.0, self.free_at - self.env.now) * self.capacity
        return self._reserved - backlog, self._cap_area

    def occupancy_area(self) -> float:
        return self._occ


class ToolService(Faulted):
    """A tool (or auth): `concurrency` servers, a queue, sampled latency and errors; or, with
    `servers`, a fluid pool (`FluidQueue`). An inventory service also keeps its stock
    (`sim.rules.inventory.Stock`)."""

    def __init__(self, env: simpy.Environment, name: str, spec: Service, rng: np.random.Generator,
                 inventory_rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.env, self.name, self.spec = env, name, spec
        self.fluid = FluidQueue(env, spec.servers) if spec.servers is not None else None
        self.pool = self.fluid or Pool(env, name, spec.concurrency, spec.queue_limit,  # type: ignore[assignment]
                                       deadline_drop=spec.deadline_drop)
        self.latency = sampler(spec.latency, rng)
        self.uniform = Uniforms(rng)
        self.breaker = CircuitBreaker(spec.circuit_breaker) if spec.circuit_breaker else None
        self.error_rate = spec.error_rate
        self._error_p = self.error_rate  # a call's chance of error with the faults in force (set_effect)
        self._plain = self.breaker is None and self.fluid is None  # no breaker to ask, no fluid pool
        self.served = 0  # calls that finished service (ok or error)
        self.time_s = 0.0  # their total time at the service (queue + service), seconds
        self.stock = Stock(spec.inventory) if spec.inventory else None
        # item picks and wrong-item mistakes: own stream, so they shift no latency or error draw
        self.draws = Uniforms(inventory_rng if inventory_rng is not None else np.random.default_rng(0))

    def call(self, prio: int, deadline: float, service_s: float | None = None, work=None):  # type: ignore[no-untyped-def]
        """Serve one call (a generator to `yield from`); returns OK, ERROR or SHED, or what
        `work()` returns: the call's effect (an order's hold, a payment), run at the end of its
        service time unless an error strikes first (`sim.rules.faults.error_timing`: half strike
        after the work, whose answer is then lost). `service_s` replaces the sampled latency (a
        registration at auth). An interrupt (the client cancelled) leaves the queue or frees the
        server, and no work is done."""
        env, pool = self.env, self.pool
        t_in = env.now
        effect = self.effect
        if effect.outage:
            return ERROR
        if not self._plain:
            if self.breaker is not None and self.breaker.allow(t_in) > 0:
                return SHED
            if self.fluid is not None:
                return (yield from self._fluid_call(deadline, service_s, work))
        if not pool.try_acquire():
            # `pool.queue`, without its generator level (this runs for every queued call)
            ev, waiter = pool.join(prio, deadline)
            if waiter is None:
                return SHED
            try:
                got = yield ev
            except simpy.Interrupt:
                pool.withdraw(ev, waiter)
                raise
            if got != GRANTED:
                return _REFUSED[got]
        try:
            yield env.timeout((self.latency() if service_s is None else service_s) * effect.slowdown)
        finally:
            pool.release()
        return self._finish(t_in, work)

    def _finish(self, t_in: float, work=None) -> str:  # type: ignore[no-untyped-def]
        """A call has finished service: count it, draw its error, feed the breaker, do its work
        unless the error struck first."""
        now = self.env.now
        self.served += 1
        self.time_s += now - t_in
        err = self._error_p
        timing = error_timing(err, self.uniform()) if err else NO_ERROR
        if self.breaker is not None:
            self.breaker.record(timing == NO_ERROR, now)
        if timing == BEFORE:
            return ERROR
        out = work() if work is not None else OK
        return ERROR if timing == AFTER else out

    def _fluid_call(self, deadline: float, service_s: float | None, work=None):  # type: ignore[no-untyped-def]
        """A call on a fluid pool: wait behind the queued work, then the latency (see FluidQueue).
        With `deadline_drop`, a call whose turn would come after its deadline waits until the
        deadline and is shed, and its work is never done."""
        env, q = self.env, self.fluid
        assert q is not None
        t_in = env.now
        service = (self.latency() if service_s is None else service_s) * self.effect.slowdown
        if self.spec.deadline_drop and q.start_at() > deadline:
            q.waiting += 1
            try:
                yield env.timeout(max(0.0, deadline - env.now))
            finally:
                q.waiting -= 1
            return SHED
        wait = q.reserve(service)
        if wait > 0:
            q.waiting += 1
            try:
                yield env.timeout(wait)
            finally:
                q.waiting -= 1
        yield env.timeout(service)
        q._occ += env.now - t_in
        return self._finish(t_in, work)

    def set_effect(self, effect: FaultEffect) -> None:
        self._error_p = effect.error_with(self.error_rate)
        if self.fluid is None:
            super().set_effect(effect)
            return
        self.effect = effect  # a fluid pool loses the fraction of its servers (no rounding to units)
        self.fluid.set_servers(0.0 if effect.outage else self.fluid.servers * (1 - effect.lost_fraction))


class GatewayService(Faulted):
    """Admission control: rate limits (reject), a bounded queue (shed), at most `concurrency`
    commands in progress."""

    def __init__(self, env: simpy.Environment, spec: Gateway, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.env, self.spec = env, spec
        self.uniform = Uniforms(rng if rng is not None else np.random.default_rng(0))  # error_rate faults
        self.pool = Pool(env, "gateway", spec.concurrency, spec.queue_limit, spec.discipline, spec.priority,
                         spec.deadline_drop, adaptive_of(spec))
        self.limiter = RateLimiter(spec.rate_limit)
        self._limits = self.limiter.limits

    def admit_rate(self, user_bucket: TokenBucket | None) -> bool:
        """True when the rate limits let the request through (`sim.rules.ratelimit`)."""
        return not self._limits or self.limiter.admit(user_bucket, self.env.now) is None

    def user_bucket(self) -> TokenBucket | None:
        """A new session's own bucket (None when there is no per-user limit)."""
        return self.limiter.user_bucket(self.env.now)

    def enter(self, prio: int, deadline: float):  # type: ignore[no-untyped-def]
        """Take a slot (a generator); returns OK or SHED/ERROR. The caller must `pool.release()`
        when it gets OK. An error_rate fault fails that fraction of requests at the door."""
        err = self.effect.error_rate
        if self.effect.outage or (err and self.uniform() < err):
            return ERROR
        pool = self.pool
        if pool.try_acquire():
            return OK
        got = yield from pool.queue(prio, deadline)
        return OK if got == GRANTED else _REFUSED[got]
