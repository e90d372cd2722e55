"""The gateway: deadlines from the client, rate limits, admission with priorities.

Deadline headers (either; the earlier wins):
- `X-Request-Timeout: <seconds>` — relative, preferred (no clock skew).
- `X-Request-Deadline: <unix seconds>` — absolute wall-clock time.
Work is dropped as soon as its deadline passes: in the admission queue (504), in a tool
call and inside the LLM engine (the sequence leaves the batch and frees its KV).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from fastapi import Request

from loadtest.stack.config import GatewayConfig
from loadtest.stack.errors import APIError, retry_after
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.overload import Admission, RateLimiter, Rejected


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
class Ticket:
    """A held admission slot; `release()` is idempotent (streams may end twice). `wait_s`:
    seconds the request waited in the admission queue."""

    gate: Gateway
    t0: float
    wait_s: float = 0.0
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.gate.admission.release(time.monotonic() - self.t0)


def behind_admission(request: Request) -> None:
    """A dependency of the routes the gateway admits: their answers carry `X-Surge-Admitted:
    0` unless `mark_admitted` was called (a client can then tell "not admitted" from a server
    that does not say)."""
    request.scope[ADMITTED_SCOPE_KEY] = None


def mark_admitted(request: Request, ticket: Ticket) -> None:
    """Have the response tell the client that the gateway admitted this request: headers
    `X-Surge-Admitted: 1` and `Server-Timing: queue;dur=<ms>` (added by `app.Observe`, also
    to error answers and streams, which the handler does not build itself)."""
    request.scope[ADMITTED_SCOPE_KEY] = ticket.wait_s


class Gateway:
    """Rate limits (429) and the admission queue (503 / 504) in front of chat and agent work."""

    def __init__(self, cfg: GatewayConfig, metrics: StackMetrics) -> None:
        self.cfg, self.metrics = cfg, metrics
        self.limiter = RateLimiter(cfg.global_per_s, cfg.burst, cfg.per_user_per_s, cfg.per_user_burst)
        self.admission = Admission(cfg.concurrency, cfg.queue_limit, cfg.discipline, cfg.deadline_drop)
        self._lowest = max(cfg.priority.values(), default=0) + 1
        metrics.registry.gauge("surge_gateway_queue_depth", "requests waiting for admission",
                               lambda: [((), self.admission.waiting)])
        metrics.registry.gauge("surge_gateway_in_progress", "requests admitted and not finished",
                               lambda: [((), self.admission.in_use)])

    def rate_limit(self, user: str) -> None:
        """Raise 429 with Retry-After when `user` or everyone is over the limit."""
        hit = self.limiter.check(user)
        if hit is not None:
            which, wait_s = hit
            self.metrics.rejected.inc((f"rate_{which}",))
            raise retry_after(429, f"rate limit exceeded ({which.replace('_', ' ')})", "rate_limit_exceeded", wait_s)

    async def admit(self, klass: str, deadline: float | None) -> Ticket:
        """Wait for a work slot; 503 when the queue is full or we were evicted, 504 on deadline."""
        t_enter = time.monotonic()
        try:
            await self.admission.acquire(self.cfg.priority.get(klass, self._lowest), deadline)
        except Rejected as r:
            self.metrics.rejected.inc((r.reason,))
            if r.reason == "deadline":
                raise APIError(504, "deadline passed while waiting for admission", "deadline_exceeded") from None
            raise retry_after(503, "server overloaded, try again later", "overloaded", r.retry_after_s) from None
        now = time.monotonic()
        return Ticket(self, now, now - t_enter)
