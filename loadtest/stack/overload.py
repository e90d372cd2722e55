"""Overload protection: token buckets and a bounded, prioritised admission queue.

`Admission` is used twice: by the gateway (chat and agent work; 503 when the queue is full)
and by every downstream service (auth, tools) as an adjustable concurrency limit.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


class Rejected(Exception):
    """Admission refused: `reason` is queue_full, evicted or deadline; retry after seconds."""

    def __init__(self, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


class TokenBucket:
    """`rate_per_s` tokens per second, at most `burst` stored; one token per request."""

    __slots__ = ("rate_per_s", "burst", "tokens", "stamp")

    def __init__(self, rate_per_s: float, burst: float, now: float) -> None:
        self.rate_per_s, self.burst, self.tokens, self.stamp = rate_per_s, burst, burst, now

    def take(self, now: float) -> float:
        """0.0 if a token was taken, else seconds until one will be there."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s


class RateLimiter:
    """A global bucket and one bucket per user; either may be absent (no limit)."""

    _MAX_USERS = 100_000  # beyond this, idle (full) buckets are forgotten

    def __init__(self, global_per_s: float | None, burst: float | None, per_user_per_s: float | None,
                 per_user_burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        now = clock()
        self._global = TokenBucket(global_per_s, burst or max(1.0, global_per_s), now) if global_per_s else None
        self._per_user_per_s, self._per_user_burst = per_user_per_s, per_user_burst
        self._users: dict[str, TokenBucket] = {}

    def check(self, user: str) -> tuple[str, float] | None:
        """None if allowed, else (which limit, seconds to wait). The user bucket is checked
        first so that a user over their own limit does not drain the global bucket."""
        now = self._clock()
        if self._per_user_per_s:
            b = self._users.get(user)
            if b is None:
                if len(self._users) >= self._MAX_USERS:
                    self._forget_idle(now)
                b = self._users[user] = TokenBucket(self._per_user_per_s, self._per_user_burst, now)
            wait = b.take(now)
            if wait:
                return "per_user", wait
        if self._global:
            wait = self._global.take(now)
            if wait:
                return "global", wait
        return None

    def _forget_idle(self, now: float) -> None:
        for u in [u for u, b in self._users.items() if b.tokens + (now - b.stamp) * b.rate_per_s >= b.burst]:
            del self._users[u]


@dataclass(eq=False)
class _Waiter:
    priority: int
    deadline: float | None
    fut: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Admission:
    """At most `capacity()` holders at once; up to `queue_limit` waiters (None = unbounded).

    Waiters are served by priority (lower number first), then FIFO or LIFO. A full queue
    evicts its least important newest waiter for a more important arrival, else refuses the
    arrival. With `deadline_drop`, a waiter whose deadline (monotonic seconds) passes leaves.
    """

    def __init__(self, capacity: int | Callable[[], int], queue_limit: int | None = None,
                 discipline: str = "fifo", deadline_drop: bool = True) -> None:
        self._capacity = capacity if callable(capacity) else (lambda: capacity)
        self.queue_limit, self.lifo, self.deadline_drop = queue_limit, discipline == "lifo", deadline_drop
        self.in_use = 0
        self.waiting = 0
        self._queues: dict[int, deque[_Waiter]] = {}
        self._seq = itertools.count()
        self._hold_s = 0.05  # EWMA of how long a slot is held: the basis of Retry-After

    @property
    def capacity(self) -> int:
        return self._capacity()

    def retry_after_s(self) -> float:
        cap = max(1, self.capacity)
        return min(30.0, max(1.0, self._hold_s * (self.waiting + 1) / cap))

    async def acquire(self, priority: int = 0, deadline: float | None = None) -> None:
        """Wait for a slot; raise `Rejected` when refused, evicted or out of time."""
        if self.in_use < self.capacity and not self.waiting:
            self.in_use += 1
            return
        if self.queue_limit is not None and self.waiting >= self.queue_limit and not self._evict_for(priority):
            raise Rejected("queue_full", self.retry_after_s())
        w = _Waiter(priority, deadline if self.deadline_drop else None)
        self._queues.setdefault(priority, deque()).append(w)
        self.waiting += 1
        try:
            await self._wait(w)
        except BaseException:
            if not w.fut.done():
                w.fut.cancel()
                self.waiting -= 1
            elif not w.fut.cancelled() and w.fut.exception() is None:
                self.release()  # granted in the same instant we gave up: hand the slot on
            raise

    async def _wait(self, w: _Waiter) -> None:
        while True:
            self._dispatch()
            timeout = 0.25  # re-check now and then: capacity may come back without a release
            if w.deadline is not None:
                left = w.deadline - time.monotonic()
                if left <= 0:
                    raise Rejected("deadline", 0.0)
                timeout = min(timeout, left)
            done, _ = await asyncio.wait({w.fut}, timeout=timeout)
            if done:
                return w.fut.result()  # raises Rejected when evicted

    def _evict_for(self, priority: int) -> bool:
        for p in sorted(self._queues, reverse=True):
            if p <= priority:
                return False
            q = self._queues[p]
            while q:
                w = q.pop()  # the newest of the least important class loses its place
                if not w.fut.done():
                    self.waiting -= 1
                    w.fut.set_exception(Rejected("evicted", self.retry_after_s()))
                    return True
        return False

    def _dispatch(self) -> None:
        while self.waiting and self.in_use < self.capacity:
            w = self._next()
            if w is None:
                return
            self.waiting -= 1
            self.in_use += 1
            w.fut.set_result(None)

    def _next(self) -> _Waiter | None:
        for p in sorted(self._queues):
            q = self._queues[p]
            while q:
                w = q.pop() if self.lifo else q.popleft()
                if not w.fut.done():
                    return w
        return None

    def release(self, held_s: float | None = None) -> None:
        """Give a slot back; `held_s` (seconds) feeds the Retry-After estimate."""
        self.in_use -= 1
        if held_s is not None:
            self._hold_s += 0.05 * (held_s - self._hold_s)
        self._dispatch()


def monotonic_deadline(timeout_s: float | None) -> float | None:
    """A `time.monotonic()` deadline `timeout_s` from now (None stays None)."""
    return None if timeout_s is None or not math.isfinite(timeout_s) else time.monotonic() + timeout_s
