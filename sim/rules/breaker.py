"""Circuit breaker: closed -> open after `failure_threshold` consecutive failures -> after
`open_s` seconds half-open, letting one probe through: its success closes the breaker, its
failure opens it again. A probe that never reports (its caller vanished) does not wedge the
breaker: after another `open_s` the next call probes. While open, calls fail fast (`shed`).
Calls already running when it opened still report: a success closes it, failures count again
towards the threshold.
"""

from __future__ import annotations

import math

from sim.scenario.services import CircuitBreaker as BreakerSpec

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    __slots__ = ("threshold", "open_s", "failures", "opened_at", "probe_at", "opened")

    def __init__(self, spec: BreakerSpec) -> None:
        self.threshold, self.open_s = spec.failure_threshold, spec.open_s
        self.failures = 0
        self.opened_at = -math.inf  # -inf: closed
        self.probe_at = -math.inf  # when the current half-open probe went out (-inf: none)
        self.opened = 0  # times it opened

    def state(self, now: float) -> str:
        if self.opened_at == -math.inf:
            return CLOSED
        return OPEN if now - self.opened_at < self.open_s else HALF_OPEN

    def allow(self, now: float) -> float:
        """0.0 when a call may go ahead at `now`, else seconds until the breaker lets one through."""
        if self.opened_at == -math.inf:
            return 0.0
        if now - self.opened_at < self.open_s:
            return self.opened_at + self.open_s - now
        if now - self.probe_at < self.open_s:  # a probe is out: wait for its answer
            return self.probe_at + self.open_s - now
        self.probe_at = now
        return 0.0

    def record(self, ok: bool, now: float) -> None:
        """Count a call's outcome at `now`."""
        if ok:
            self.failures, self.opened_at, self.probe_at = 0, -math.inf, -math.inf
            return
        self.failures += 1
        probing = self.probe_at != -math.inf  # half-open with a probe out: this is its answer
        if probing or self.failures >= self.threshold:
            self.failures, self.opened_at, self.probe_at = 0, now, -math.inf
            self.opened += 1
