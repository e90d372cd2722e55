"""The gateway: deadlines from the client, rate limits, admission with priorities.

Deadline headers (either; the earlier wins):
- `X-Request-Timeout: <seconds>` — relative, preferred (no clock skew).
- `X-Request-Deadline: <unix seconds>` — absolute wall-clock time.
What the stack does with a deadline is the scenario's rule (`sim.rules.deadlines`): the
admission queue drops expired waiters (504) with `services.gateway.deadline_drop` or
`clients.cancel_on_timeout`; tools and the LLM engine stop work at the deadline (the sequence
leaves the batch and frees its KV) only with `clients.cancel_on_timeout`.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

import numpy as np
from fastapi import Request

from loadtest.stack.errors import APIError, retry_after
from loadtest.stack.faults import FaultBoard
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.overload import Admission, Rejected
from sim.rules.admission import adaptive_of
from sim.rules.deadlines import Deadlines
from sim.rules.faults import NO_FAULT, FaultEffect
from sim.rules.ratelimit import RateLimiter
from sim.scenario import Scenario


def parse_deadline(request: Request) -> float | None:
    """The request's deadline as a `time.monotonic()` value, or None; 400 if malformed,
    504 if already past."""
    out: float | None = None
    for name, absolute in (("x-request-timeout", False), ("x-request-deadline", True)):
        raw = request.headers.get(name)
        if raw is None:
            continue
        try:
            v = float(raw)
        except ValueError:
            v = math.nan
        if not math.isfinite(v) or (not absolute and v <= 0):
            raise APIError(400, f"'{name}' must be a positive number of seconds (got {raw[:40]!r})",
                           "invalid_header", name)
        left = v - time.time() if absolute else v
        d = time.monotonic() + left
        out = d if out is None else min(out, d)
    if out is not None and out <= time.monotonic():
        raise APIError(504, "the request deadline has already passed", "deadline_exceeded")
    return out


def client_key(request: Request) -> str:
    """Who a request is from when it carries no session: its API key, else its address.
    The key is hashed so that /metrics and logs never show it."""
    auth = request.headers.get("authorization", "")
    if auth:
        return "key:" + hashlib.sha256(auth.encode()).hexdigest()[:16]
    return "ip:" + (request.client.host if request.client else "unknown")


ADMITTED_SCOPE_KEY = "surge.admission_wait_s"


@dataclass
class Slot:
    """A held admission slot; `release()` is idempotent (streams may end twice). `wait_s`:
    seconds the request waited in the admission queue."""

    gate: HttpGateway
    t0: float
    wait_s: float = 0.0
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            if self.gate.admission is not None:
                self.gate.admission.release(time.monotonic() - self.t0)


async def behind_admission(request: Request) -> None:
    """A dependency of the routes the gateway admits: their answers carry `X-Surge-Admitted:
    0` unless `mark_admitted` was called (a client can then tell "not admitted" from a server
    that does not say). Async: FastAPI runs a plain function dependency in its thread pool,
    a hop that costs more than the whole rejection path."""
    request.scope[ADMITTED_SCOPE_KEY] = None


def mark_admitted(request: Request, ticket: Slot) -> None:
    """Have the response tell the client that the gateway admitted this request: headers
    `X-Surge-Admitted: 1` and `Server-Timing: queue;dur=<ms>` (added by `edge.Edge`, also
    to error answers and streams, which the handler does not build itself)."""
    request.scope[ADMITTED_SCOPE_KEY] = ticket.wait_s


class HttpGateway:
    """Rate limits (429) and the admission queue (503 / 504) in front of chat and agent work,
    as the scenario's `services.gateway` describes them (no gateway: everything is admitted).
    A request's priority is its command class's (`workload.classes.*.priority`)."""

    def __init__(self, sc: Scenario, faults: FaultBoard, metrics: StackMetrics, rng: np.random.Generator) -> None:
        self.spec, self.metrics, self._rng = sc.services.gateway, metrics, rng
        g = self.spec
        self.priorities = {name: c.priority for name, c in sc.workload.classes.items()}
        self._lowest = max(self.priorities.values(), default=0) + 1
        self._most_important = min(self.priorities.values(), default=0)
        self.limiter = RateLimiter(g.rate_limit if g else None, time.monotonic())
        self.admission = None if g is None else Admission(
            g.concurrency, g.queue_limit, lifo=g.discipline == "lifo", priority=g.priority,
            deadline_drop=Deadlines.of(sc).gateway_drops(), adaptive=adaptive_of(g))
        self.effect = NO_FAULT
        faults.on_change("gateway", self._apply)
        adm = self.admission
        metrics.registry.gauge("surge_gateway_queue_depth", "requests waiting for admission",
                               lambda: [((), adm.waiting if adm else 0)])
        metrics.registry.gauge("surge_gateway_in_progress", "requests admitted and not finished",
                               lambda: [((), adm.in_use if adm else 0)])
        metrics.registry.gauge("surge_gateway_capacity", "admission slots up (faults take some)",
                               lambda: [((), adm.capacity if adm else 0)])

    def _apply(self, effect: FaultEffect) -> None:
        self.effect = effect
        if self.admission is not None and self.spec is not None:
            self.admission.set_capacity(effect.units_up(self.spec.concurrency))
            if effect.outage:
                self.admission.fail_waiting()

    def priority(self, klass: str | None) -> int:
        """A class's priority; a request naming no known class is the least important."""
        return self.priorities.get(klass or "", self._lowest)

    def shed_early(self, klass: str | None, class_in_body: bool = False) -> APIError | None:
        """The 503 for an arrival the admission queue would shed now, decided from its headers
        alone (`AdmissionQueue.refuse`, the rule `admit` applies), or None. `klass` is the
        request's `X-Surge-Class`; when the route's body may name the class instead
        (`class_in_body`) and no header does, the most important class is assumed, so nothing
        the rule would admit is shed early."""
        if self.admission is None:
            return None
        prio = self.priority(klass) if klass is not None or not class_in_body else self._most_important
        if not self.admission.refuses(prio):
            return None
        self.metrics.rejected.inc(("queue_full",))
        return _overloaded("queue_full", self.admission.retry_after_s())

    def rate_limit(self, user: str) -> None:
        """Raise 429 with Retry-After when `user` or everyone is over the limit."""
        hit = self.limiter.check(user, time.monotonic()) if self.limiter.limits else None
        if hit is not None:
            which, wait_s = hit
            self.metrics.rejected.inc((f"rate_{which}",))
            raise retry_after(429, f"rate limit exceeded ({which.replace('_', ' ')})", "rate_limit_exceeded", wait_s)

    async def admit(self, klass: str | None, deadline: float | None) -> Slot:
        """Wait for a work slot; 503 when the queue is full, we were evicted or the gateway is
        down (faults), 504 when the deadline passed in the queue."""
        t_enter = time.monotonic()
        e = self.effect
        if e.outage or (e.error_rate and self._rng.random() < e.error_rate):
            self.metrics.rejected.inc(("gateway_fault",))
            raise retry_after(503, "the gateway failed the request (fault)", "gateway_error", 1.0)
        if self.admission is None:
            return Slot(self, t_enter, 0.0)
        try:
            await self.admission.acquire(self.priority(klass), deadline)
        except Rejected as r:
            self.metrics.rejected.inc((r.reason,))
            if r.reason == "deadline":
                raise APIError(504, "deadline passed while waiting for admission", "deadline_exceeded") from None
            if r.reason == "down":
                raise retry_after(503, "the gateway is down (fault)", "gateway_error", 1.0) from None
            raise _overloaded(r.reason, r.retry_after_s) from None
        now = time.monotonic()
        return Slot(self, now, now - t_enter)


# why an overloaded answer came: queue_full (at arrival), evicted (after waiting, displaced by more
# important work) or stale (after waiting the adaptive LIFO target in a standing queue)
SHED_HEADER = "X-Surge-Shed"


def _overloaded(reason: str, retry_after_s: float) -> APIError:
    e = retry_after(503, "server overloaded, try again later", "overloaded", retry_after_s)
    e.headers[SHED_HEADER] = reason
    return e
