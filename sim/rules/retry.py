"""The scenario's client policy: backoff with jitter, the retry budget and adaptive throttling.

One implementation for the simulator (`sim.des.client`), the fleet engine and the load test,
so that measurement and simulation retry the same way. Budget and throttle look at about a
minute of traffic through exponentially decaying counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from sim.rules.outcomes import REJECTED, SHED, TIMEOUT
from sim.scenario import Clients

WINDOW_S = 60.0
# outcomes that do not count as "accepted" for adaptive throttling (Google SRE book, ch. 21)
NOT_ACCEPTED = (REJECTED, SHED, TIMEOUT)


class Decaying:
    """A count that forgets with time constant `tau_s` (a cheap sliding window)."""

    __slots__ = ("tau", "value", "last")

    def __init__(self, tau_s: float) -> None:
        self.tau, self.value, self.last = tau_s, 0.0, 0.0

    def add(self, now: float, n: float = 1.0) -> None:
        self.value = self.value * math.exp((self.last - now) / self.tau) + n
        self.last = now

    def read(self, now: float) -> float:
        return self.value * math.exp((self.last - now) / self.tau)


class RetryPolicy:
    """When to send, retry or refuse, and how long to wait, for one client population.

    `uniform` draws U(0,1) for throttling; `jitter` (default: `uniform`) for backoff jitter;
    `clock` gives the current time in seconds."""

    def __init__(self, spec: Clients, uniform: Callable[[], float], clock: Callable[[], float],
                 jitter: Callable[[], float] | None = None) -> None:
        self.spec, self.uniform, self.clock = spec, uniform, clock
        self.jitter = jitter or uniform
        self.firsts, self.retries = Decaying(WINDOW_S), Decaying(WINDOW_S)
        self.requests, self.accepts = Decaying(2 * WINDOW_S), Decaying(2 * WINDOW_S)
        self.may_refuse = spec.retry_budget_ratio is not None or bool(spec.adaptive_throttle_k)

    def backoff_s(self, attempt: int) -> float:
        """Capped exponential backoff with the scenario's jitter, seconds (attempt 0 = first retry)."""
        b = self.spec.backoff
        d = min(b.cap_s, b.base_s * b.multiplier**attempt)
        if b.jitter == "full":
            return d * self.jitter()
        if b.jitter == "equal":
            return d / 2 + d / 2 * self.jitter()
        return d

    def refuse(self, attempt: int) -> bool:
        """True when the client must not send this attempt: the retry budget is spent, or
        adaptive throttling drops it (p = max(0, (requests - K accepts) / (requests + 1)))."""
        if not self.may_refuse:
            return False
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
        """An attempt went out (first try or retry): feeds the retry budget."""
        if self.spec.retry_budget_ratio is not None:
            (self.retries if attempt else self.firsts).add(self.clock())

    def answered(self, outcome: str) -> None:
        """An attempt came back with `outcome`: feeds adaptive throttling."""
        if self.spec.adaptive_throttle_k:
            now = self.clock()
            self.requests.add(now)
            if outcome not in NOT_ACCEPTED:
                self.accepts.add(now)

    def retryable(self, outcome: str) -> bool:
        return outcome in self.spec.retry_on or (outcome == "auth" and self.spec.relogin)

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_s or math.inf
