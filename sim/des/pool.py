"""A pool of servers whose capacity can change while the simulation runs.

SimPy's `Resource` has a fixed capacity; faults and autoscaling need one that shrinks and
grows. `Pool` also does what an admission queue in front of a real service does: a bounded
queue (full = shed), FIFO or LIFO, priorities, dropping work whose deadline has passed, and
cancelling work whose client went away. It keeps the busy-time integral for utilisation.
"""

from __future__ import annotations

import heapq
from collections import deque

import simpy

GRANTED, SHED, EXPIRED, CANCELLED, DOWN = "granted", "shed", "expired", "cancelled", "down"


class Ticket:
    """One place in the queue; its `event` fires with GRANTED, EXPIRED or DOWN."""

    __slots__ = ("event", "deadline", "cancelled", "t0")

    def __init__(self, event: simpy.Event, deadline: float, t0: float) -> None:
        self.event = event
        self.deadline = deadline
        self.cancelled = False
        self.t0 = t0  # when it joined the queue


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
    ) -> None:
        self.env = env
        self.name = name
        self.capacity = capacity
        self.queue_limit = queue_limit
        self.lifo = discipline == "lifo"
        self.priority = priority
        self.deadline_drop = deadline_drop
        self.busy = 0
        self.waiting = 0  # live tickets in the queue (cancelled ones are removed lazily)
        self.dropped = 0
        self._fifo: deque[Ticket] = deque()
        self._heap: list[tuple[int, int, Ticket]] = []
        self._seq = 0
        self.granted = 0  # calls that got a server, at once or after queueing
        self.queued = 0  # of those, calls that queued first
        self.wait_s = 0.0  # their total time in the queue, seconds
        self._area = 0.0  # integral of busy servers over time
        self._cap_area = 0.0  # integral of capacity over time
        self._occ_area = 0.0  # integral of calls present (busy + waiting) over time
        self._last = 0.0

    # -- accounting -------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.env.now
        dt = now - self._last
        if dt:
            self._area += self.busy * dt
            self._cap_area += self.capacity * dt
            self._occ_area += (self.busy + self.waiting) * dt
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
        if self.busy < self.capacity and not self.waiting:
            now = self.env.now  # _tick() inlined: this runs once per call
            dt = now - self._last
            if dt:
                self._area += self.busy * dt
                self._cap_area += self.capacity * dt
                self._occ_area += self.busy * dt  # nobody is waiting
                self._last = now
            self.busy += 1
            self.granted += 1
            return True
        return False

    def enqueue(self, prio: int = 0, deadline: float = float("inf")) -> Ticket | None:
        """Join the queue; None when it is full (the caller sheds the request)."""
        if self.queue_limit is not None and self.waiting >= self.queue_limit:
            return None
        self._tick()
        t = Ticket(self.env.event(), deadline, self.env.now)
        self.waiting += 1
        if self.priority:
            self._seq += 1
            heapq.heappush(self._heap, (prio, -self._seq if self.lifo else self._seq, t))
        else:
            self._fifo.append(t)
        return t

    def queue(self, prio: int = 0, deadline: float = float("inf")):  # type: ignore[no-untyped-def]
        """Wait for a server (a generator to `yield from`); returns GRANTED, EXPIRED, DOWN, or
        SHED when the queue is full. An interrupt (the client cancelled) leaves the queue, or
        gives the server back if it had just been granted."""
        ticket = self.enqueue(prio, deadline)
        if ticket is None:
            return SHED
        try:
            return (yield ticket.event)
        except simpy.Interrupt:
            self.leave(ticket)
            raise

    def cancel(self, t: Ticket) -> None:
        """The client went away before being served: forget its ticket."""
        if not t.cancelled and not t.event.triggered:
            self._tick()
            t.cancelled = True
            self.waiting -= 1

    def leave(self, t: Ticket) -> None:
        """An interrupted waiter: give back the server if it was already granted, else leave."""
        if t.event.triggered:
            if t.event.value == GRANTED:
                self.release()
        else:
            self.cancel(t)

    def release(self) -> None:
        self._tick()
        self.busy -= 1
        if self.waiting:
            self._grant()

    def _pop(self) -> Ticket | None:
        while self._fifo or self._heap:
            if self.priority:
                t = heapq.heappop(self._heap)[2]
            else:
                t = self._fifo.pop() if self.lifo else self._fifo.popleft()
            if not t.cancelled:
                self.waiting -= 1
                return t
        return None

    def _grant(self) -> None:
        now = self.env.now
        while self.busy < self.capacity and self.waiting:
            t = self._pop()
            if t is None:
                break
            if self.deadline_drop and t.deadline <= now:
                self.dropped += 1
                t.event.succeed(EXPIRED)
                continue
            self.busy += 1
            self.granted += 1
            self.queued += 1
            self.wait_s += now - t.t0
            t.event.succeed(GRANTED)

    # -- capacity changes (faults, autoscaling) -----------------------------------------------
    def set_capacity(self, capacity: int) -> None:
        """Change the number of servers; work in service finishes, new grants follow the new size."""
        self._tick()
        self.capacity = max(0, capacity)
        self._grant()

    def fail_waiting(self) -> int:
        """Outage: every queued ticket fails at once (DOWN). Returns how many."""
        self._tick()
        n = 0
        while self.waiting:
            t = self._pop()
            if t is None:
                break
            t.event.succeed(DOWN)
            n += 1
        return n

    def __repr__(self) -> str:
        return f"Pool({self.name!r}, capacity={self.capacity}, busy={self.busy}, waiting={self.waiting})"
