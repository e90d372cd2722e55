"""Faults injected at run time (`/admin/faults`), each active for `duration_s` seconds.

A fault is the scenario's own `Fault` (validated by the same schema: kinds, magnitudes,
targets) applied now. What the faults in force on a target do together is
`sim.rules.faults.combine`, the simulator's rule; components read the combined `effect(target)`
(slowdown, error rate, replicas down) or are told when it changes (`on_change`: slots up,
outage failing the queue). Expiry needs no polling: the board ends a fault at its time.

session_invalidation (target auth): that fraction of the sessions issued so far stops being
valid at once (which ones: a seeded hash of the session, see `auth.TokenSessions`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from sim.rules.faults import NO_FAULT, FaultEffect, combine
from sim.scenario import Fault
from sim.scenario.schema import FaultKind


@dataclass(frozen=True)
class ActiveFault:
    """A fault in force; times are `time.time()` seconds (wall clock, shown to clients)."""

    id: int
    kind: FaultKind
    target: str
    magnitude: float
    starts_at: float
    ends_at: float


class FaultBoard:
    """The faults in force on one stack instance, and their combined effect per target."""

    def __init__(self, targets: list[str], clock: Callable[[], float] = time.time) -> None:
        self.targets = targets
        self._clock = clock
        self._faults: dict[int, ActiveFault] = {}
        self._ids = itertools.count(1)
        self._effects: dict[str, FaultEffect] = {}
        self._listeners: dict[str, list[Callable[[FaultEffect], None]]] = {}
        # (time, fraction) of each session invalidation so far; its index is its epoch
        self.invalidations: list[tuple[float, float]] = []

    def check(self, kind: str, target: str, magnitude: float) -> str | None:
        """Why this fault cannot be applied (the scenario schema's own rules), or None."""
        if target not in self.targets:
            return f"'target' must be one of {self.targets} (got {target!r})"
        try:
            Fault(at_s=0, duration_s=1, target=target, kind=kind, magnitude=magnitude)  # type: ignore[arg-type]
        except ValidationError as e:
            return str(e.errors()[0]["msg"]).removeprefix("Value error, ")
        if kind == "session_invalidation" and target != "auth":
            return f"'target' must be 'auth' for session_invalidation (got {target!r})"
        if kind == "wrong_item" and target in ("gateway", "auth", "llm"):
            return f"'target' must be a tool for wrong_item (got {target!r})"
        return None

    def on_change(self, target: str, listener: Callable[[FaultEffect], None]) -> None:
        """Call `listener(effect)` whenever the faults in force on `target` change."""
        self._listeners.setdefault(target, []).append(listener)

    def add(self, kind: FaultKind, target: str, magnitude: float, duration_s: float) -> ActiveFault:
        now = self._clock()
        f = ActiveFault(next(self._ids), kind, target, magnitude, now, now + duration_s)
        if kind == "session_invalidation":
            self.invalidations.append((now, magnitude))
        self._faults[f.id] = f
        self._changed(target)
        return f

    def expire(self) -> None:
        """End every fault whose time is up (the stack calls this at each fault's end, on the
        event loop: listeners change queues that only the loop touches)."""
        now = self._clock()
        gone = [f for f in self._faults.values() if f.ends_at <= now]
        for f in gone:
            del self._faults[f.id]
        for target in {f.target for f in gone}:
            self._changed(target)

    def active(self) -> list[ActiveFault]:
        self.expire()
        return list(self._faults.values())

    def remove(self, fault_id: int) -> bool:
        f = self._faults.pop(fault_id, None)
        if f is not None:
            self._changed(f.target)
        return f is not None

    def clear(self) -> int:
        n, targets = len(self._faults), {f.target for f in self._faults.values()}
        self._faults.clear()
        for t in targets:
            self._changed(t)
        return n

    def next_end(self) -> float | None:
        """When the next fault in force ends (wall clock), or None."""
        return min((f.ends_at for f in self._faults.values()), default=None)

    def _changed(self, target: str) -> None:
        effect = combine(f for f in self._faults.values() if f.target == target and f.kind != "session_invalidation")
        self._effects[target] = effect
        for listener in self._listeners.get(target, ()):
            listener(effect)

    def effect(self, target: str) -> FaultEffect:
        """The combined effect of the faults in force on `target`: one immutable object, so
        engine threads may read it while the event loop replaces it."""
        return self._effects.get(target, NO_FAULT)
