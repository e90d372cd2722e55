"""The open-model dispatcher: one greenlet sleeps until each intended start and spawns it.

Starts never wait for answers, so a slow system gets more concurrent work, as real users do
(no coordinated omission). Two histograms say how late starts were: `lateness:dispatch`, when the
dispatcher issued the start (its timer precision), and `lateness:start`, when the start actually
began running (adds the time the process was busy with other starts' work). A start that finds `max_in_flight` starts still running is not sent and counted
as `dropped` (as k6 counts dropped iterations): the load generator, not the system, ran out.
Runs in a gevent process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gevent
from gevent.pool import Group

from loadtest.schedule import Schedule
from loadtest.tally import Tally

StartFn = Callable[[int, float], None]  # (index in the schedule, lateness in seconds)
LATENESS = "lateness:dispatch"
LATENESS_START = "lateness:start"


class Dispatcher:
    """Starts `start(k, late_s)` at `t0 + schedule.times_s[k]` until `stop_at_s` (since t0)."""

    def __init__(self, schedule: Schedule, start: StartFn, tally: Tally, t0: float, stop_at_s: float,
                 max_in_flight: int, clock: Callable[[], float] = time.time) -> None:
        self.schedule, self.start, self.tally = schedule, start, tally
        self.t0, self.stop_at_s, self.max_in_flight, self.clock = t0, stop_at_s, max_in_flight, clock
        self.group = Group()
        self.dispatched = self.dropped = 0
        self.stopped = False

    def run(self) -> None:
        """Dispatch the whole schedule (returns at its end or at `stop_at_s`)."""
        clock, t0, tally = self.clock, self.t0, self.tally
        for k, t in enumerate(self.schedule.times_s.tolist()):
            if self.stopped or t >= self.stop_at_s:
                break
            delay = t0 + t - clock()
            while delay > 0 and not self.stopped:
                gevent.sleep(delay)
                delay = t0 + t - clock()
            if self.stopped:
                break
            tally.count("scheduled", t)
            if len(self.group) >= self.max_in_flight:
                self.dropped += 1
                tally.count("dropped", t)
                continue
            self.dispatched += 1
            tally.observe(LATENESS, t, -delay)
            self.group.spawn(self._one, k, t)

    def _one(self, k: int, t: float) -> None:
        late = max(0.0, self.clock() - self.t0 - t)
        self.tally.observe(LATENESS_START, t, late)
        self.start(k, late)

    def wait_until(self, t_s: float) -> None:
        """Sleep until `t0 + t_s`."""
        delay = self.t0 + t_s - self.clock()
        if delay > 0:
            gevent.sleep(delay)

    def shutdown(self) -> int:
        """Stop dispatching and kill every start still running; returns how many were running."""
        self.stopped = True
        running = len(self.group)
        self.group.kill(block=True, timeout=5)
        return running
