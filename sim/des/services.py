"""Auth, tools and the gateway as the simulator sees them: pools of servers with latency,
errors, faults, circuit breakers and token-bucket rate limits."""

from __future__ import annotations

import numpy as np
import simpy

from sim.des.pool import DOWN, EVICTED, EXPIRED, GRANTED, Pool
from sim.des.pool import SHED as POOL_FULL
from sim.dists import sampler
from sim.rules.breaker import CircuitBreaker
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.rules.outcomes import ERROR, OK, REJECTED, SHED, TIMEOUT
from sim.rules.ratelimit import RateLimiter, TokenBucket
from sim.scenario.services import Gateway, Service

__all__ = ["ERROR", "OK", "REJECTED", "SHED", "TIMEOUT", "GatewayService", "ToolService", "Uniforms"]
# why a queued request did not get a server, as the client sees it
_REFUSED = {EXPIRED: SHED, EVICTED: SHED, DOWN: ERROR, POOL_FULL: SHED}


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


class ToolService(Faulted):
    """A tool (or auth): `concurrency` servers, a queue, sampled latency and errors."""

    def __init__(self, env: simpy.Environment, name: str, spec: Service, rng: np.random.Generator) -> None:
        super().__init__()
        self.env, self.name, self.spec = env, name, spec
        self.pool = Pool(env, name, spec.concurrency, spec.queue_limit)
        self.latency = sampler(spec.latency, rng)
        self.uniform = Uniforms(rng)
        self.breaker = CircuitBreaker(spec.circuit_breaker) if spec.circuit_breaker else None
        self.error_rate = spec.error_rate
        self.served = 0  # calls that finished service (ok or error)
        self.time_s = 0.0  # their total time at the service (queue + service), seconds

    def call(self, prio: int, deadline: float):  # type: ignore[no-untyped-def]
        """Serve one call (a generator to `yield from`); returns OK, ERROR or SHED.
        An interrupt (the client cancelled) leaves the queue or frees the server."""
        env, pool = self.env, self.pool
        t_in = env.now
        effect = self.effect
        if effect.outage:
            return ERROR
        if self.breaker is not None and self.breaker.allow(t_in) > 0:
            return SHED
        if not pool.try_acquire():
            got = yield from pool.queue(prio, deadline)
            if got != GRANTED:
                return _REFUSED[got]
        try:
            yield env.timeout(self.latency() * effect.slowdown)
        finally:
            pool.release()
        self.served += 1
        self.time_s += env.now - t_in
        err = self.effect.error_with(self.error_rate)
        ok = not (err and self.uniform() < err)
        if self.breaker is not None:
            self.breaker.record(ok, env.now)
        return OK if ok else ERROR


class GatewayService(Faulted):
    """Admission control: rate limits (reject), a bounded queue (shed), at most `concurrency`
    commands in progress."""

    def __init__(self, env: simpy.Environment, spec: Gateway, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.env, self.spec = env, spec
        self.uniform = Uniforms(rng if rng is not None else np.random.default_rng(0))  # error_rate faults
        self.pool = Pool(env, "gateway", spec.concurrency, spec.queue_limit, spec.discipline, spec.priority,
                         spec.deadline_drop)
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
