"""Admission: at most `capacity` holders at once, the rest wait in a bounded queue.

One rule for every queue a scenario describes (the gateway, auth, each tool), used by the
simulator's `Pool` and the stack's `Admission`; they differ only in how a waiter is woken
(a SimPy event, an asyncio future), which they pass in as `grant` and `drop` callbacks.

- Discipline: waiters are served by priority class (lower number first) when `priority` is
  on, else all in one class; within a class FIFO or LIFO.
- Bound: at most `queue_limit` waiters (None: unbounded). A full queue takes an arrival only by
  evicting a waiter of a strictly less important class (the newest of the least important
  one; only with `priority`); otherwise the arrival is shed.
- Deadline drop (`deadline_drop`): a waiter whose deadline has passed leaves the queue
  (`drop(item, EXPIRED)`) the next time the queue is touched (an arrival, a release, a
  capacity change, an explicit `expire`), before anything else is decided, so every decision
  sees only live waiters.
- Capacity may change (faults, autoscaling): work holding a slot finishes; new grants follow
  the new size. An outage fails every waiter (`fail_waiting`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

T = TypeVar("T")

EXPIRED: Final = "expired"  # the waiter's deadline passed in the queue
EVICTED: Final = "evicted"  # a more important arrival took its place
DOWN: Final = "down"  # the service went down (outage) while it waited


class Waiter(Generic[T]):
    """A place in the queue (returned by `offer`, given back to `leave`)."""

    __slots__ = ("item", "priority", "deadline", "t0", "live")

    def __init__(self, item: T, priority: int, deadline: float, t0: float) -> None:
        self.item, self.priority, self.deadline, self.t0 = item, priority, deadline, t0
        self.live = True  # False once granted, dropped or gone


class AdmissionQueue(Generic[T]):
    """The queue and the slots of one service. `grant(item, waited_s)` wakes a waiter that got a
    slot; `drop(item, why)` one that lost its place (EXPIRED, EVICTED, DOWN)."""

    def __init__(self, capacity: int, queue_limit: int | None, *, lifo: bool = False, priority: bool = False,
                 deadline_drop: bool = False, grant: Callable[[T, float], None],
                 drop: Callable[[T, str], None]) -> None:
        self.capacity, self.queue_limit = max(0, capacity), queue_limit
        self.lifo, self.priority, self.deadline_drop = lifo, priority, deadline_drop
        self._grant, self._drop = grant, drop
        self.in_use = 0
        self.waiting = 0  # live waiters
        self._classes: dict[int, deque[Waiter[T]]] = {}
        self._order: list[int] = []  # priority classes present, most important first
        self.expired = self.evicted = self.shed = 0

    # -- arrivals ---------------------------------------------------------------------------
    def try_enter(self) -> bool:
        """Take a slot at once if one is free and nobody waits (the fast path: no waiter)."""
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            return True
        return False

    def offer(self, item: T, priority: int, deadline: float, now: float) -> Waiter[T] | None:
        """Queue `item` (it is woken by `grant` or `drop` later); None when it is shed.
        `priority` counts only when the queue has priorities; `deadline` only with deadline drop."""
        if self.deadline_drop:
            self.expire(now)
        if self.try_enter():  # expiry may have left a free slot and nobody waiting
            self._grant(item, 0.0)
            return Waiter(item, priority, deadline, now)
        prio = priority if self.priority else 0
        if self._full() and not self._evict_for(prio):
            self.shed += 1
            return None
        w = Waiter(item, prio, deadline, now)
        q = self._classes.get(prio)
        if q is None:
            q = self._classes[prio] = deque()
            self._order = sorted(self._classes)
        q.append(w)
        self.waiting += 1
        return w

    def refuse(self, priority: int, now: float) -> bool:
        """Whether an arrival of `priority` would be shed now, decided without queueing it (so a
        consumer can answer it before doing any work for it); counted as shed when so. Exactly
        `offer`'s decision: no free slot, the queue at its limit and no waiter of a strictly
        less important class to evict. An arrival not refused goes on to `try_enter`/`offer`."""
        if self.deadline_drop:
            self.expire(now)
        if self.in_use < self.capacity and not self.waiting:
            return False
        prio = priority if self.priority else 0
        if not self._full() or self._can_evict_for(prio):
            return False
        self.shed += 1
        return True

    def _full(self) -> bool:
        return self.queue_limit is not None and self.waiting >= self.queue_limit

    def _can_evict_for(self, priority: int) -> bool:
        """Whether a live waiter of a strictly less important class than `priority` exists."""
        if not self.priority:
            return False
        for p in reversed(self._order):
            if p <= priority:
                return False
            if any(w.live for w in self._classes[p]):
                return True
        return False

    def _evict_for(self, priority: int) -> bool:
        if not self.priority:
            return False
        for p in reversed(self._order):
            if p <= priority:
                return False
            q = self._classes[p]
            while q:
                w = q.pop()  # the newest of the least important class loses its place
                if w.live:
                    w.live = False
                    self.waiting -= 1
                    self.evicted += 1
                    self._drop(w.item, EVICTED)
                    return True
        return False

    def leave(self, w: Waiter[T]) -> bool:
        """The waiter's client went away before it was served; False if it was no longer waiting."""
        if not w.live:
            return False
        w.live = False
        self.waiting -= 1
        return True

    # -- slots ------------------------------------------------------------------------------
    def release(self, now: float) -> None:
        """A holder gives its slot back; the next live waiter (if any) gets it."""
        self.in_use -= 1
        if self.waiting:
            self.dispatch(now)

    def set_capacity(self, capacity: int, now: float) -> None:
        """Change the number of slots; holders keep theirs, grants follow the new size."""
        self.capacity = max(0, capacity)
        self.dispatch(now)

    def dispatch(self, now: float) -> None:
        """Grant free slots to waiters, in order, dropping expired ones first."""
        if self.deadline_drop:
            self.expire(now)
        while self.waiting and self.in_use < self.capacity:
            w = self._next()
            if w is None:
                return
            if self.deadline_drop and w.deadline <= now:
                self._lose(w, EXPIRED)
                continue
            self.in_use += 1
            self._grant(w.item, now - w.t0)

    def expire(self, now: float) -> int:
        """Drop waiters whose deadline has passed (from the oldest end of each class); how many."""
        n = 0
        for p in self._order:
            q = self._classes[p]
            while q and (not q[0].live or q[0].deadline <= now):
                w = q.popleft()
                if w.live:
                    self._lose(w, EXPIRED)
                    n += 1
        return n

    def fail_waiting(self) -> int:
        """Outage: every waiter fails at once (DOWN). Returns how many."""
        n = 0
        for p in self._order:
            q = self._classes[p]
            while q:
                w = q.popleft()
                if w.live:
                    w.live = False
                    self.waiting -= 1
                    self._drop(w.item, DOWN)
                    n += 1
        return n

    def _lose(self, w: Waiter[T], why: str) -> None:
        w.live = False
        self.waiting -= 1
        if why == EXPIRED:
            self.expired += 1
        self._drop(w.item, why)

    def _next(self) -> Waiter[T] | None:
        for p in self._order:
            q = self._classes[p]
            while q:
                w = q.pop() if self.lifo else q.popleft()
                if w.live:
                    w.live = False
                    self.waiting -= 1
                    return w
        return None

    def waiters(self) -> list[T]:
        """The live waiters' items, in the order they would be served (for tests and gauges)."""
        out: list[T] = []
        for p in self._order:
            q = self._classes[p]
            ordered = reversed(q) if self.lifo else iter(q)
            out += [w.item for w in ordered if w.live]
        return out
