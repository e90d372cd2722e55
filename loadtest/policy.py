"""The scenario's client policy, for real HTTP: what an answer means, when to retry, how long
to wait. Mirrors `sim.des.client` so that measurement and simulation count the same things.

Outcomes (the simulator's failure reasons):
- `timeout`: no complete answer within `clients.timeout_s` (measured by the client);
- `rejected`: 429, a rate limit;
- `shed`: 503 overloaded / circuit open, 504 deadline passed at the server, 409 key in use;
- `auth`: 401, the session is gone (re-login when `clients.relogin`);
- `error`: any other failure (5xx from a tool or the model, a broken connection, a bad body);
- `throttled`: refused on the client by the retry budget or adaptive throttling (no traffic).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sim.des.client import Decaying
from sim.scenario import Clients

OK, TIMEOUT, REJECTED, SHED, ERROR, AUTH, THROTTLED, ABANDONED = (
    "ok", "timeout", "rejected", "shed", "error", "auth", "throttled", "abandoned")
_WINDOW_S = 60.0
_SHED_CODES = ("overloaded", "circuit_open", "deadline_exceeded", "idempotency_key_in_use", "not_ready")


def classify(status: int, code: str | None = None) -> str:
    """The outcome of an HTTP answer (`code` is the OpenAI-style `error.code`, if any)."""
    if 200 <= status < 300:
        return OK
    if status == 429:
        return REJECTED
    if status == 401:
        return AUTH
    if status in (409, 504):
        return SHED
    if status == 503:
        return SHED if code is None or any(c in code for c in _SHED_CODES) else ERROR
    return ERROR


def admitted(status: int, code: str | None = None) -> bool:
    """Whether an answer shows the attempt got past the gateway, for a server that does not say so
    (the reference stack does: `X-Surge-Admitted`): every answer but 429, 401, 409, and 503/504
    from the admission queue."""
    if status in (0, 401, 409, 429):
        return False
    return not (status in (503, 504) and code in ("overloaded", "deadline_exceeded", "not_ready"))


class RetryPolicy:
    """Backoff, retry budget and adaptive throttling for one load-generating process.

    The budget and the throttle look at about a minute of this process's traffic (the simulator
    keeps them for the whole population; with several workers each keeps its own share)."""

    def __init__(self, spec: Clients, uniform: Callable[[], float], clock: Callable[[], float]) -> None:
        self.spec, self.uniform, self.clock = spec, uniform, clock
        self.firsts, self.retries = Decaying(_WINDOW_S), Decaying(_WINDOW_S)
        self.requests, self.accepts = Decaying(2 * _WINDOW_S), Decaying(2 * _WINDOW_S)

    def backoff_s(self, attempt: int) -> float:
        """Capped exponential backoff with the scenario's jitter, seconds (attempt 0 = first retry)."""
        b = self.spec.backoff
        d = min(b.cap_s, b.base_s * b.multiplier**attempt)
        if b.jitter == "full":
            return d * self.uniform()
        if b.jitter == "equal":
            return d / 2 + d / 2 * self.uniform()
        return d

    def refuse(self, attempt: int) -> bool:
        """True when the client must not send this attempt (budget spent or throttling)."""
        now = self.clock()
        budget = self.spec.retry_budget_ratio
        if attempt and budget is not None and self.retries.read(now) + 1 > budget * self.firsts.read(now):
            return True
        k = self.spec.adaptive_throttle_k
        if k:
            req, acc = self.requests.read(now), self.accepts.read(now)
            p = max(0.0, (req - k * acc) / (req + 1))
            if p and self.uniform() < p:
                self.requests.add(now)
                return True
        return False

    def sent(self, attempt: int) -> None:
        (self.retries if attempt else self.firsts).add(self.clock())

    def answered(self, outcome: str) -> None:
        if self.spec.adaptive_throttle_k:
            now = self.clock()
            self.requests.add(now)
            if outcome not in (REJECTED, SHED, TIMEOUT):
                self.accepts.add(now)

    def retryable(self, outcome: str) -> bool:
        return outcome in self.spec.retry_on or (outcome == AUTH and self.spec.relogin)

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_s or math.inf
