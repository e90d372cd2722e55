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
- Adaptive LIFO (`AdaptiveLifo`, discipline `adaptive_lifo`; Facebook's adaptive LIFO with
  CoDel's target, Maurer, "Fail at Scale", ACM Queue 2015): a queue that has been empty within
  the last `interval_s` serves FIFO; a standing queue (not empty for `interval_s`) serves the
  newest first and drops every waiter that has waited `target_s` or more (`drop(item, STALE)`),
  so work that would be late anyway fails fast instead of timing out. It follows that no
  waiter is ever served after waiting `interval_s` or more. Stale waiters leave when the queue
  is touched, like expired ones; a consumer with a clock touches it (`tidy`) at `due()`, the
  next instant something would change untouched.
- Capacity may change (faults, autoscaling): work holding a slot finishes; new grants follow
  the new size. An outage fails every waiter (`fail_waiting`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    from sim.scenario.services import Gateway

T = TypeVar("T")

EXPIRED: Final = "expired"  # the waiter's deadline passed in the queue
EVICTED: Final = "evicted"  # a more important arrival took its place
DOWN: Final = "down"  # the service went down (outage) while it waited
STALE: Final = "stale"  # a standing queue's waiter reached the adaptive LIFO target: fail fast


class AdaptiveLifo:
    """When a queue stands and which of its waiters are stale (the module docstring). Its tests
    take plain floats (the queue below) or numpy arrays (the fleet engine's replications): the
    same arithmetic for both. Seconds throughout."""

    __slots__ = ("interval_s", "target_s")

    def __init__(self, interval_s: float, target_s: float) -> None:
        self.interval_s, self.target_s = interval_s, target_s

    def standing(self, empty_at: Any, now: float) -> Any:
        """Whether a queue last empty at `empty_at` (and not empty now) is a standing queue.
        (Written as a comparison of instants, the same sums `due` makes: a timer set for that
        instant finds the condition true.)"""
        return now >= empty_at + self.interval_s

    def stale(self, t0: Any, now: float) -> Any:
        """Whether a waiter of a standing queue that joined at `t0` is stale (dropped)."""
        return now >= t0 + self.target_s

    def stale_age_steps(self, dt: float) -> int:
        """The count form on a grid of `dt`-second steps: a cohort `a` steps old is stale from
        `a` = this on (never in the step it arrived: the grid's resolution)."""
        return max(1, math.ceil(self.target_s / dt - 1e-9))

    def standing_since(self, empty_at: float) -> float:
        """The instant a queue last empty at `empty_at` becomes standing, if it stays non-empty."""
        return empty_at + self.interval_s

    def __repr__(self) -> str:
        return f"AdaptiveLifo(interval_s={self.interval_s!r}, target_s={self.target_s!r})"


def adaptive_of(gateway: Gateway | None) -> AdaptiveLifo | None:
    """The adaptive LIFO rule of a scenario's gateway, or None when its discipline is another."""
    if gateway is None or gateway.discipline != "adaptive_lifo":
        return None
    a = gateway.adaptive_lifo
    return AdaptiveLifo(a.interval_s, a.target_s)


class Waiter(Generic[T]):
    """A place in the queue (returned by `offer`, given back to `leave`)."""

    __slots__ = ("item", "priority", "deadline", "t0", "live")

    def __init__(self, item: T, priority: int, deadline: float, t0: float) -> None:
        self.item, self.priority, self.deadline, self.t0 = item, priority, deadline, t0
        self.live = True  # False once granted, dropped or gone


class AdmissionQueue(Generic[T]):
    """The queue and the slots of one service. `grant(item, waited_s)` wakes a waiter that got a
    slot; `drop(item, why)` one that lost its place (EXPIRED, EVICTED, DOWN, STALE).
    `adaptive`: serve by adaptive LIFO (then `lifo` is ignored)."""

    def __init__(self, capacity: int, queue_limit: int | None, *, lifo: bool = False, priority: bool = False,
                 deadline_drop: bool = False, grant: Callable[[T, float], None],
                 drop: Callable[[T, str], None], adaptive: AdaptiveLifo | None = None) -> None:
        self.capacity, self.queue_limit = max(0, capacity), queue_limit
        self.lifo, self.priority, self.deadline_drop = lifo, priority, deadline_drop
        self.adaptive = adaptive
        self._grant, self._drop = grant, drop
        self.in_use = 0
        self.waiting = 0  # live waiters
        self._classes: dict[int, deque[Waiter[T]]] = {}
        self._order: list[int] = []  # priority classes present, most important first
        self.expired = self.evicted = self.shed = self.stale = 0
        self.empty_at = 0.0  # the last instant nobody waited (adaptive LIFO: when the queue last drained)

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
        self.tidy(now)
        if self.try_enter():  # expiry may have left a free slot and nobody waiting
            self._grant(item, 0.0)
            return Waiter(item, priority, deadline, now)
        prio = priority if self.priority else 0
        if self._full() and not self._evict_for(prio):
            self.shed += 1
            return None
        if not self.waiting:
            self.empty_at = now
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
        self.tidy(now)
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
        """Grant free slots to waiters, in order, dropping expired and stale ones first."""
        self.tidy(now)
        newest_first = self.lifo if self.adaptive is None else bool(self.waiting) and self.standing(now)
        while self.waiting and self.in_use < self.capacity:
            w = self._next(newest_first)
            if w is None:
                break
            if self.deadline_drop and w.deadline <= now:
                self._lose(w, EXPIRED)
                continue
            self.in_use += 1
            self._grant(w.item, now - w.t0)
        if not self.waiting:
            self.empty_at = now

    # -- adaptive LIFO ----------------------------------------------------------------------
    def tidy(self, now: float) -> None:
        """Touch the queue: expired waiters (deadline drop) and stale ones (adaptive LIFO) leave."""
        if self.deadline_drop:
            self.expire(now)
        if self.adaptive is None:
            return
        if not self.waiting:
            self.empty_at = now
        elif self.standing(now):
            for p in self._order:
                q = self._classes[p]
                while q and (not q[0].live or self.adaptive.stale(q[0].t0, now)):
                    w = q.popleft()
                    if w.live:
                        self._lose(w, STALE)
            if not self.waiting:
                self.empty_at = now

    def standing(self, now: float) -> bool:
        """Adaptive LIFO: whether the queue has not been empty for its interval (False without)."""
        return self.adaptive is not None and bool(self.waiting) and bool(self.adaptive.standing(self.empty_at, now))

    def due(self) -> float | None:
        """Adaptive LIFO: the next instant at which `tidy` would drop a waiter if nothing touched
        the queue before (None: no waiter, or not adaptive)."""
        if self.adaptive is None or not self.waiting:
            return None
        oldest = min((q[0].t0 for q in self._live_fronts()), default=math.inf)
        return max(self.adaptive.standing_since(self.empty_at), oldest + self.adaptive.target_s)

    def _live_fronts(self) -> list[deque[Waiter[T]]]:
        out = []
        for p in self._order:
            q = self._classes[p]
            while q and not q[0].live:
                q.popleft()
            if q:
                out.append(q)
        return out

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
        elif why == STALE:
            self.stale += 1
        self._drop(w.item, why)

    def _next(self, newest_first: bool) -> Waiter[T] | None:
        for p in self._order:
            q = self._classes[p]
            while q:
                w = q.pop() if newest_first else q.popleft()
                if w.live:
                    w.live = False
                    self.waiting -= 1
                    return w
        return None

    def waiters(self) -> list[T]:
        """The live waiters' items, in the order they would be served (for tests and gauges; an
        adaptive queue's order is its FIFO one)."""
        out: list[T] = []
        for p in self._order:
            q = self._classes[p]
            ordered = reversed(q) if self.lifo and self.adaptive is None else iter(q)
            out += [w.item for w in ordered if w.live]
        return out
