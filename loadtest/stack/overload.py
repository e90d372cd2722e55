"""Overload protection on asyncio: the shared admission rule with futures as waiters.

What a queue decides (order, bounds, eviction, deadline drop, capacity changes) is
`sim.rules.admission.AdmissionQueue`, the simulator's own; `Admission` wakes a waiting request's
future when the rule grants or drops it, and (adaptive LIFO) touches the queue at the rule's
`due()` instant with one loop timer, as the simulator's `Pool` does with one SimPy timer. Used by
the gateway (chat and agent work) and by every downstream service (auth, tools). Rate limits are
`sim.rules.ratelimit.RateLimiter`.
"""

from __future__ import annotations

import asyncio
import math
import time

from sim.rules.admission import DOWN, EVICTED, EXPIRED, STALE, AdaptiveLifo, AdmissionQueue

# why a waiter lost its place -> the reason the stack reports (HTTP 503/504 codes)
_REASONS = {EXPIRED: "deadline", EVICTED: "evicted", DOWN: "down", STALE: "stale"}


class Rejected(Exception):
    """Admission refused: `reason` is queue_full, evicted, stale, deadline or down; retry after seconds."""

    def __init__(self, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(reason)
        self.reason, self.retry_after_s = reason, retry_after_s


class Admission:
    """At most `capacity` holders at once, the rest waiting by the shared rule."""

    def __init__(self, capacity: int, queue_limit: int | None = None, *, lifo: bool = False,
                 priority: bool = False, deadline_drop: bool = False, adaptive: AdaptiveLifo | None = None) -> None:
        self.q: AdmissionQueue[asyncio.Future[float]] = AdmissionQueue(
            capacity, queue_limit, lifo=lifo, priority=priority, deadline_drop=deadline_drop,
            grant=self._grant, drop=self._drop, adaptive=adaptive)
        self._hold_s = 0.05  # EWMA of how long a slot is held: the basis of Retry-After
        self._due = math.inf  # adaptive LIFO: when the armed touch fires (inf: none armed)

    @property
    def in_use(self) -> int:
        return self.q.in_use

    @property
    def waiting(self) -> int:
        return self.q.waiting

    @property
    def capacity(self) -> int:
        return self.q.capacity

    def retry_after_s(self) -> float:
        return min(30.0, max(1.0, self._hold_s * (self.q.waiting + 1) / max(1, self.q.capacity)))

    def refuses(self, priority: int = 0) -> bool:
        """Whether an arrival of `priority` would be shed now (`AdmissionQueue.refuse`): lets a
        request be answered 503 before any work is done for it."""
        return self.q.refuse(priority, time.monotonic())

    def _grant(self, fut: asyncio.Future[float], waited_s: float) -> None:
        if fut.done():  # its request was cancelled after the rule chose it: hand the slot straight on
            asyncio.get_running_loop().call_soon(self.release)
        else:
            fut.set_result(waited_s)

    def _drop(self, fut: asyncio.Future[float], why: str) -> None:
        if not fut.done():
            fut.set_exception(Rejected(_REASONS.get(why, why), self.retry_after_s()))

    async def acquire(self, priority: int = 0, deadline: float | None = None) -> float:
        """Wait for a slot (`deadline`: `time.monotonic()` seconds); seconds waited. Raises
        `Rejected` when the queue is full, or the rule drops the waiter."""
        q = self.q
        if q.try_enter():
            return 0.0
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        w = q.offer(fut, priority, math.inf if deadline is None else deadline, time.monotonic())
        if w is None:
            raise Rejected("queue_full", self.retry_after_s())
        if q.adaptive is not None:
            self._arm()
        try:
            if deadline is not None and q.deadline_drop and not fut.done():
                # the rule drops expired waiters when the queue is touched: touch it at our deadline
                await asyncio.wait({fut}, timeout=max(0.0, deadline - time.monotonic()))
                if not fut.done():
                    q.expire(time.monotonic())
            return await fut
        except BaseException:
            # Cancelling the awaiting task cancels `fut` too: a cancelled future must still
            # leave the queue (regression: it stayed there, and its later grant held a slot
            # that nobody would ever release).
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # granted in the same instant we gave up: hand the slot on
            else:
                fut.cancel()
                q.leave(w)  # a no-op if no longer waiting (a grant since is handed on by _grant)
            raise

    def release(self, held_s: float | None = None) -> None:
        """Give a slot back; `held_s` (seconds) feeds the Retry-After estimate."""
        if held_s is not None:
            self._hold_s += 0.05 * (held_s - self._hold_s)
        self.q.release(time.monotonic())
        if self.q.adaptive is not None:
            self._arm()

    def set_capacity(self, capacity: int) -> None:
        self.q.set_capacity(capacity, time.monotonic())
        if self.q.adaptive is not None:
            self._arm()

    def _arm(self) -> None:
        """Adaptive LIFO: touch the queue at the rule's next `due()` instant, so a stale waiter
        fails then, not at the next arrival or release. One timer at a time (see `Pool._arm`)."""
        due = self.q.due()
        if due is None or due >= self._due:
            return
        self._due = due
        asyncio.get_running_loop().call_later(max(0.0, due - time.monotonic()), self._touch, due)

    def _touch(self, at: float) -> None:
        if at != self._due:
            return  # superseded by an earlier timer that has fired and re-armed
        self._due = math.inf
        self.q.tidy(max(time.monotonic(), at))  # the loop's clock may fire a timer a little early
        self._arm()

    def fail_waiting(self) -> int:
        return self.q.fail_waiting()


def monotonic_deadline(timeout_s: float | None) -> float | None:
    """A `time.monotonic()` deadline `timeout_s` from now (None stays None)."""
    return None if timeout_s is None or not math.isfinite(timeout_s) else time.monotonic() + timeout_s
