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
        # whether `sent` and `answered` count anything (callers on a hot path may skip them)
        self.counts_sent = spec.retry_budget_ratio is not None
        self.counts_answers = bool(spec.adaptive_throttle_k)

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

    # -- the same rules for counts (the fleet engine sends cohorts, not single attempts) --------
    def backoff_kernel(self, attempt: int, dt: float, n: int = 4096) -> list[float]:
        """P(the backoff before retry `attempt` lasts k steps of `dt`), k = 0, 1, ...: the
        distribution of `backoff_s` over the jitter (exact quantiles of the uniform draw)."""
        jitter = self.jitter
        grid = iter([(i + 0.5) / n for i in range(n)])
        self.jitter = lambda: next(grid)
        try:
            waits = [self.backoff_s(attempt) for _ in range(n)]
        finally:
            self.jitter = jitter
        out: list[float] = []
        for w in waits:
            k = int(w / dt + 0.5)
            out.extend([0.0] * (k + 1 - len(out)))
            out[k] += 1.0 / n
        return out

    def throttle_probability(self, now: float) -> float:
        """Adaptive throttling's refusal probability now: max(0, (requests - K accepts) / (requests + 1))."""
        k = self.spec.adaptive_throttle_k
        if not k:
            return 0.0
        req, acc = self.requests.read(now), self.accepts.read(now)
        return max(0.0, (req - k * acc) / (req + 1))

    def budget_allows(self, retries: float, now: float) -> float:
        """How many of `retries` retries sent at `now` the retry budget lets through: each one
        goes while retries + 1 <= ratio x first tries (the per-attempt rule of `refuse`)."""
        budget = self.spec.retry_budget_ratio
        if budget is None:
            return retries
        room = budget * self.firsts.read(now) - self.retries.read(now)
        return float(min(retries, max(0.0, math.floor(room))))

    def sent_many(self, firsts: float, retries: float, now: float) -> None:
        """`sent` for counts of first tries and retries."""
        if self.spec.retry_budget_ratio is not None:
            if firsts:
                self.firsts.add(now, firsts)
            if retries:
                self.retries.add(now, retries)

    def answered_many(self, outcome: str, n: float, now: float) -> None:
        """`answered` for n attempts with one outcome (throttled ones count as requests, as in `refuse`)."""
        if self.spec.adaptive_throttle_k and n:
            self.requests.add(now, n)
            if outcome not in NOT_ACCEPTED:
                self.accepts.add(now, n)

    def throttled_many(self, n: float, now: float) -> None:
        """n attempts refused by adaptive throttling count as requests (as in `refuse`)."""
        if self.spec.adaptive_throttle_k and n:
            self.requests.add(now, n)

    def retryable(self, outcome: str) -> bool:
        return outcome in self.spec.retry_on or (outcome == "auth" and self.spec.relogin)

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_s or math.inf
