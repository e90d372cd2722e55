"""Auth, tools and the gateway as the simulator sees them: pools of servers with latency,
errors, faults, circuit breakers and token-bucket rate limits."""

from __future__ import annotations

import math

import numpy as np
import simpy

from sim.des.pool import DOWN, EXPIRED, GRANTED, Pool
from sim.des.pool import SHED as POOL_FULL
from sim.dists import sampler
from sim.scenario.services import Gateway, Service

OK, ERROR, SHED, REJECTED, TIMEOUT = "ok", "error", "shed", "rejected", "timeout"
# why a queued request did not get a server, as the client sees it
_REFUSED = {EXPIRED: SHED, DOWN: ERROR, POOL_FULL: SHED}


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


class Breaker:
    """Opens after `threshold` consecutive failures; while open, calls fail fast (shed)."""

    __slots__ = ("threshold", "open_s", "failures", "open_until")

    def __init__(self, threshold: int, open_s: float) -> None:
        self.threshold, self.open_s = threshold, open_s
        self.failures = 0
        self.open_until = -math.inf

    def allows(self, now: float) -> bool:
        return now >= self.open_until

    def record(self, ok: bool, now: float) -> bool:
        """Count an outcome; True when this failure opened the breaker."""
        if ok:
            self.failures = 0
            return False
        self.failures += 1
        if self.failures >= self.threshold:
            self.failures = 0
            self.open_until = now + self.open_s
            return True
        return False


class Faulted:
    """State that faults change on a service: capacity lost, slowdown, extra errors, outage.
    Subclasses have a `pool` and a `spec` with `concurrency`."""

    pool: Pool
    spec: Service | Gateway

    def __init__(self) -> None:
        self.lost_fraction = 0.0
        self.slowdown = 1.0
        self.fault_error = 0.0
        self.outage = False

    def apply_faults(self) -> None:
        """Servers up = concurrency x (1 - lost fraction); an outage fails the queue at once."""
        self.pool.set_capacity(0 if self.outage else round(self.spec.concurrency * (1 - self.lost_fraction)))
        if self.outage:
            self.pool.fail_waiting()


class ToolService(Faulted):
    """A tool (or auth): `concurrency` servers, a queue, sampled latency and errors."""

    def __init__(self, env: simpy.Environment, name: str, spec: Service, rng: np.random.Generator) -> None:
        super().__init__()
        self.env, self.name, self.spec = env, name, spec
        self.pool = Pool(env, name, spec.concurrency, spec.queue_limit)
        self.latency = sampler(spec.latency, rng)
        self.uniform = Uniforms(rng)
        cb = spec.circuit_breaker
        self.breaker = Breaker(cb.failure_threshold, cb.open_s) if cb else None
        self.error_rate = spec.error_rate
        self.served = 0  # calls that finished service (ok or error)
        self.time_s = 0.0  # their total time at the service (queue + service), seconds

    def call(self, prio: int, deadline: float, service_s: float | None = None):  # type: ignore[no-untyped-def]
        """Serve one call (a generator to `yield from`); returns OK, ERROR or SHED. `service_s`
        replaces the sampled latency (a registration at auth). An interrupt (the client
        cancelled) leaves the queue or frees the server."""
        env, pool = self.env, self.pool
        t_in = env.now
        if self.outage:
            return ERROR
        if self.breaker is not None and not self.breaker.allows(t_in):
            return SHED
        if not pool.try_acquire():
            got = yield from pool.queue(prio, deadline)
            if got != GRANTED:
                return _REFUSED[got]
        try:
            yield env.timeout((self.latency() if service_s is None else service_s) * self.slowdown)
        finally:
            pool.release()
        self.served += 1
        self.time_s += env.now - t_in
        err = self.error_rate
        if self.fault_error:
            err = 1 - (1 - err) * (1 - self.fault_error)
        ok = not (err and self.uniform() < err)
        if self.breaker is not None:
            self.breaker.record(ok, env.now)
        return OK if ok else ERROR


class TokenBucket:
    """`rate_per_s` tokens a second, at most `burst` saved up."""

    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate_per_s: float, burst: float) -> None:
        self.rate, self.burst = rate_per_s, burst
        self.tokens, self.last = burst, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class GatewayService(Faulted):
    """Admission control: rate limits (reject), a bounded queue (shed), at most `concurrency`
    commands in progress."""

    def __init__(self, env: simpy.Environment, spec: Gateway, rng: np.random.Generator | None = None) -> None:
        super().__init__()
        self.env, self.spec = env, spec
        self.uniform = Uniforms(rng if rng is not None else np.random.default_rng(0))  # error_rate faults
        self.pool = Pool(env, "gateway", spec.concurrency, spec.queue_limit, spec.discipline, spec.priority,
                         spec.deadline_drop)
        rl = spec.rate_limit
        self.bucket = None
        if rl is not None and rl.global_per_s is not None:
            self.bucket = TokenBucket(rl.global_per_s, rl.burst or max(1.0, rl.global_per_s))
        self.per_user = rl.per_user_per_s if rl is not None else None
        self.per_user_burst = rl.per_user_burst if rl is not None else 1.0

    def admit_rate(self, user_bucket: TokenBucket | None) -> bool:
        now = self.env.now
        if user_bucket is not None and not user_bucket.take(now):
            return False
        return self.bucket is None or self.bucket.take(now)

    def user_bucket(self) -> TokenBucket | None:
        return TokenBucket(self.per_user, self.per_user_burst) if self.per_user else None

    def enter(self, prio: int, deadline: float):  # type: ignore[no-untyped-def]
        """Take a slot (a generator); returns OK or SHED/ERROR. The caller must `pool.release()`
        when it gets OK. An error_rate fault fails that fraction of requests at the door."""
        if self.outage or (self.fault_error and self.uniform() < self.fault_error):
            return ERROR
        pool = self.pool
        if pool.try_acquire():
            return OK
        got = yield from pool.queue(prio, deadline)
        return OK if got == GRANTED else _REFUSED[got]
