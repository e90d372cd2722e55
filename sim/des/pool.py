"""A pool of servers for the SimPy engine: the shared admission rule plus SimPy events.

What a queue does (bounded, FIFO, LIFO or adaptive LIFO, priorities with eviction, deadline
drop, capacity that changes with faults and autoscaling, outages) is
`sim.rules.admission.AdmissionQueue`, the same code the reference stack runs. `Pool` adds how a
waiter is woken in simulated time (a SimPy event per waiter), the touch at the rule's `due()`
instant that adaptive LIFO needs (one timer per pool), and the time integrals behind
utilisation, occupancy and waiting.
"""

from __future__ import annotations

from functools import partial

import simpy

from sim.rules.admission import DOWN, EVICTED, EXPIRED, STALE, AdaptiveLifo, AdmissionQueue, Waiter

GRANTED, SHED = "granted", "shed"
__all__ = ["DOWN", "EVICTED", "EXPIRED", "GRANTED", "SHED", "STALE", "Pool", "Ticket"]


class Ticket:
    """One place in the queue; its `event` fires with GRANTED, EXPIRED, EVICTED or DOWN."""

    __slots__ = ("event", "waiter")

    def __init__(self, event: simpy.Event) -> None:
        self.event = event
        self.waiter: Waiter[simpy.Event] | None = None


def _drop(ev: simpy.Event, why: str) -> None:
    ev.succeed(why)


class Pool:
    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        capacity: int,
        queue_limit: int | None = None,
        discipline: str = "fifo",
        priority: bool = False,
        deadline_drop: bool = False,
        adaptive: AdaptiveLifo | None = None,
    ) -> None:
        self.env = env
        self.name = name
        self.q: AdmissionQueue[simpy.Event] = AdmissionQueue(
            capacity, queue_limit, lifo=discipline == "lifo", priority=priority, deadline_drop=deadline_drop,
            grant=self._granted, drop=_drop, adaptive=adaptive)
        self._due = float("inf")  # adaptive LIFO: when the armed touch fires (inf: none armed)
        self.granted = 0  # calls that got a server, at once or after queueing
        self.queued = 0  # of those, calls that queued first
        self.wait_s = 0.0  # their total time in the queue, seconds
        self._area = 0.0  # integral of busy servers over time
        self._cap_area = 0.0  # integral of capacity over time
        self._occ_area = 0.0  # integral of calls present (busy + waiting) over time
        self._last = 0.0

    def _granted(self, ev: simpy.Event, waited_s: float) -> None:
        self.granted += 1
        self.queued += 1
        self.wait_s += waited_s
        ev.succeed(GRANTED)

    @property
    def capacity(self) -> int:
        return self.q.capacity

    @property
    def busy(self) -> int:
        return self.q.in_use

    @property
    def waiting(self) -> int:
        return self.q.waiting

    @property
    def dropped(self) -> int:
        """Waiters dropped because their deadline passed in the queue."""
        return self.q.expired

    # -- accounting -------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.env.now
        dt = now - self._last
        if dt:
            q = self.q
            self._area += q.in_use * dt
            self._cap_area += q.capacity * dt
            self._occ_area += (q.in_use + q.waiting) * dt
            self._last = now

    def busy_area(self) -> tuple[float, float]:
        """(integral of busy servers, integral of capacity) since the start, server-seconds."""
        self._tick()
        return self._area, self._cap_area

    def occupancy_area(self) -> float:
        """Integral of calls present (in service or queued) since the start, call-seconds."""
        self._tick()
        return self._occ_area

    # -- the hot path ------------------------------------------------------------------------
    def try_acquire(self) -> bool:
        """Take a server now if one is free and nobody is queued (no event: the fast path)."""
        q = self.q
        if q.in_use < q.capacity and not q.waiting:
            # `_tick`, inlined: this and `release` run once per call at every service
            now = self.env.now
            dt = now - self._last
            if dt:
                self._area += q.in_use * dt
                self._cap_area += q.capacity * dt
                self._occ_area += (q.in_use + q.waiting) * dt
                self._last = now
            q.try_enter()
            self.granted += 1
            return True
        return False

    def join(self, prio: int, deadline: float) -> tuple[simpy.Event, Waiter[simpy.Event] | None]:
        """Join the queue with a new event (it fires with GRANTED, EXPIRED, EVICTED or DOWN):
        (the event, its place; None when the queue is full). `queue` without its generator, for
        a caller that waits on the event itself; it must `withdraw` when interrupted."""
        self._tick()
        ev = self.env.event()
        w = self.q.offer(ev, prio, deadline, self.env.now)
        if self.q.adaptive is not None:
            self._arm()
        return ev, w

    def enqueue(self, prio: int = 0, deadline: float = float("inf")) -> Ticket | None:
        """Join the queue; None when it is full (the caller sheds the request)."""
        ev, waiter = self.join(prio, deadline)
        if waiter is None:
            return None
        t = Ticket(ev)
        t.waiter = waiter
        return t

    def queue(self, prio: int = 0, deadline: float = float("inf")):  # type: ignore[no-untyped-def]
        """Wait for a server (a generator to `yield from`); returns GRANTED, EXPIRED, EVICTED,
        DOWN, or SHED when the queue is full. An interrupt (the client cancelled) leaves the
        queue, or gives the server back if it had just been granted. (No Ticket: this path
        keeps the event and its place itself.)"""
        ev, waiter = self.join(prio, deadline)
        if waiter is None:
            return SHED
        try:
            return (yield ev)
        except simpy.Interrupt:
            self.withdraw(ev, waiter)
            raise

    def cancel(self, t: Ticket) -> None:
        """The client went away before being served: forget its ticket."""
        self._cancel(t.event, t.waiter)

    def leave(self, t: Ticket) -> None:
        """An interrupted waiter: give back the server if it was already granted, else leave."""
        self.withdraw(t.event, t.waiter)

    def _cancel(self, ev: simpy.Event, waiter: Waiter[simpy.Event] | None) -> None:
        if waiter is not None and not ev.triggered:
            self._tick()
            self.q.leave(waiter)

    def withdraw(self, ev: simpy.Event, waiter: Waiter[simpy.Event] | None) -> None:
        """An interrupted waiter of `join`: give back the server if it was granted, else leave."""
        if ev.triggered:
            if ev.value == GRANTED:
                self.release()
        else:
            self._cancel(ev, waiter)

    def release(self) -> None:
        """A holder gives its server back (the next waiter, if any, gets it)."""
        q = self.q
        now = self.env.now
        dt = now - self._last
        if dt:  # `_tick`, inlined (see `try_acquire`)
            self._area += q.in_use * dt
            self._cap_area += q.capacity * dt
            self._occ_area += (q.in_use + q.waiting) * dt
            self._last = now
        q.release(now)
        if q.adaptive is not None:
            self._arm()

    def _arm(self) -> None:
        """Adaptive LIFO: touch the queue at the rule's next `due()` instant (stale waiters fail
        then, not at the next arrival or release). One timer at a time: a later one is not
        needed while an earlier is armed (it re-arms when it fires)."""
        due = self.q.due()
        if due is None or due >= self._due:
            return
        self._due = due
        ev = self.env.timeout(max(0.0, due - self.env.now))
        ev.callbacks.append(partial(self._touch, due))

    def _touch(self, at: float, _ev: object = None) -> None:
        if at != self._due:
            return  # superseded by an earlier timer that has fired and re-armed
        self._due = float("inf")
        self._tick()
        self.q.tidy(max(self.env.now, at))  # `now + (at - now)` may round below `at`
        self._arm()

    # -- capacity changes (faults, autoscaling) -----------------------------------------------
    def set_capacity(self, capacity: int) -> None:
        """Change the number of servers; work in service finishes, new grants follow the new size."""
        self._tick()
        self.q.set_capacity(capacity, self.env.now)
        if self.q.adaptive is not None:
            self._arm()

    def fail_waiting(self) -> int:
        """Outage: every queued ticket fails at once (DOWN). Returns how many."""
        self._tick()
        return self.q.fail_waiting()

    def __repr__(self) -> str:
        return f"Pool({self.name!r}, capacity={self.capacity}, busy={self.busy}, waiting={self.waiting})"
