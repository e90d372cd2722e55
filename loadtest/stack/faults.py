"""Faults injected at run time (`/admin/faults`), each active for `duration_s` seconds.

Kinds and what `magnitude` means:
- capacity_loss: fraction of the target's capacity gone (llm: that share of replicas down,
  rounded up; a tool or auth: that share of its concurrency slots gone).
- slowdown: latency multiplier (2.0 = twice as slow; llm: every engine step).
- error_rate: extra probability in [0, 1] that a call to the target fails.
- outage: the target answers nothing but errors (magnitude ignored).
- session_invalidation: target auth; that fraction of the sessions issued so far stops being
  valid at once (which ones: a seeded hash of the session, see `auth.Sessions`).

Components ask lazily (`multiplier`, `extra_error_rate`, ...): expiry needs no timer task.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["capacity_loss", "slowdown", "error_rate", "outage", "session_invalidation"]


@dataclass(frozen=True)
class Fault:
    """An active fault; times are `time.time()` seconds (wall clock, shown to clients)."""

    id: int
    kind: FaultKind
    target: str
    magnitude: float
    starts_at: float
    ends_at: float


class FaultBoard:
    """The set of active faults of one stack instance."""

    def __init__(self, targets: list[str], clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.targets = targets
        self._clock = clock
        self._faults: dict[int, Fault] = {}
        self._ids = itertools.count(1)
        # (time, fraction) of each session invalidation so far; its index is its epoch
        self.invalidations: list[tuple[float, float]] = []

    def check(self, kind: str, target: str, magnitude: float) -> str | None:
        """Why this fault cannot be applied, or None if it can."""
        if target not in self.targets:
            return f"'target' must be one of {self.targets} (got {target!r})"
        if kind == "session_invalidation" and target != "auth":
            return f"'target' must be 'auth' for session_invalidation (got {target!r})"
        if kind in ("capacity_loss", "error_rate") and not 0 <= magnitude <= 1:
            return f"'magnitude' must be in [0, 1] for {kind} (got {magnitude})"
        if kind == "slowdown" and magnitude < 1:
            return f"'magnitude' must be >= 1 for slowdown (got {magnitude})"
        return None

    def add(self, kind: FaultKind, target: str, magnitude: float, duration_s: float) -> Fault:
        now = self._clock()
        f = Fault(next(self._ids), kind, target, magnitude, now, now + duration_s)
        if kind == "session_invalidation":
            self.invalidations.append((now, magnitude))
        self._faults[f.id] = f
        return f

    def active(self) -> list[Fault]:
        now = self._clock()
        for fid in [i for i, f in self._faults.items() if f.ends_at <= now]:
            del self._faults[fid]
        return list(self._faults.values())

    def remove(self, fault_id: int) -> bool:
        return self._faults.pop(fault_id, None) is not None

    def clear(self) -> int:
        n = len(self._faults)
        self._faults.clear()
        return n

    def _of(self, target: str, kind: str) -> list[Fault]:
        if not self._faults:  # fast path: the common case has no faults at all
            return []
        return [f for f in self.active() if f.target == target and f.kind == kind]

    def outage(self, target: str) -> bool:
        return bool(self._of(target, "outage"))

    def multiplier(self, target: str) -> float:
        """Latency multiplier (product of active slowdowns, 1.0 when none)."""
        return math.prod(f.magnitude for f in self._of(target, "slowdown"))

    def extra_error_rate(self, target: str) -> float:
        """Probability that a call fails because of faults (independent faults combine)."""
        ok = math.prod(1 - f.magnitude for f in self._of(target, "error_rate"))
        return 1 - ok

    def capacity_lost(self, target: str) -> float:
        """Fraction of the target's capacity removed (1.0 during an outage)."""
        if self.outage(target):
            return 1.0
        return min(1.0, sum(f.magnitude for f in self._of(target, "capacity_loss")))

    def replicas_down(self, target: str, replicas: int) -> int:
        return min(replicas, math.ceil(self.capacity_lost(target) * replicas - 1e-9))
