"""The host CPU the stack's parts share (`services.host`): processor sharing over `cores`.

n busy jobs each progress at min(1, cores / n) CPU-seconds per second. Kept in virtual time:
`_v` is the CPU time every busy job has received so far, so a job of `work_s` that starts when
it is V finishes when it reaches V + work_s; only the earliest finish is scheduled, again
whenever a job starts or ends (an event made stale by a change is recognised and ignored).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import simpy
from simpy.events import NORMAL

from sim.des.calls import call_at

_EPS = 1e-12


class HostCpu:
    """`run(work_s, done)` calls `done()` once the job has had `work_s` CPU-seconds."""

    def __init__(self, env: simpy.Environment, cores: float) -> None:
        self.env, self.cores = env, cores
        self._jobs: list[tuple[float, int, Callable[[], object]]] = []  # (finish in virtual time, order, done)
        self._v = 0.0
        self._t = 0.0
        self._gen = 0  # which scheduled event is current
        self._order = itertools.count()
        self.busy_s = 0.0  # core-seconds of work done (for utilisation)

    @property
    def busy(self) -> int:
        """Jobs running now."""
        return len(self._jobs)

    def _rate(self) -> float:
        n = len(self._jobs)
        return min(1.0, self.cores / n) if n else 0.0

    def _advance(self) -> None:
        now = self.env.now
        dt = now - self._t
        if dt > 0 and self._jobs:
            r = self._rate()
            self._v += dt * r
            self.busy_s += dt * r * len(self._jobs)
        self._t = now

    def run(self, work_s: float, done: Callable[[], object]) -> None:
        """Start a job of `work_s` CPU-seconds; `done()` is called (from an event) when it ends."""
        self._advance()
        heapq.heappush(self._jobs, (self._v + max(0.0, work_s), next(self._order), done))
        self._schedule()

    def work(self, work_s: float) -> simpy.Event:
        """An event that succeeds when a job of `work_s` CPU-seconds has run (for processes)."""
        ev = self.env.event()
        self.run(work_s, lambda: ev.succeed())
        return ev

    def _schedule(self) -> None:
        self._gen += 1
        if not self._jobs:
            return
        delay = max(0.0, (self._jobs[0][0] - self._v) / self._rate())
        gen = self._gen
        call_at(self.env, delay, lambda _: self._fire(gen), NORMAL)

    def _fire(self, gen: int) -> None:
        if gen != self._gen:
            return  # a start or an end since then rescheduled
        self._advance()
        # the head is due now (this event was scheduled for it); others may end at the same instant
        head, _, first = heapq.heappop(self._jobs)
        self._v = max(self._v, head)
        finished = [first]
        tol = _EPS * max(1.0, abs(self._v))
        while self._jobs and self._jobs[0][0] <= self._v + tol:
            finished.append(heapq.heappop(self._jobs)[2])
        self._schedule()
        for done in finished:
            done()
