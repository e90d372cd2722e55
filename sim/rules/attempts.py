"""The client's attempt loop, as a state machine both clients drive (the simulator's SimPy
process and the load test's gevent greenlet): they send, wait and sleep; this decides.

A command is a series of attempts. Before each, the policy may refuse it (`throttled`); each
runs under `time_limit` (the per-attempt timeout, and the user's patience); after each,
`after(outcome)` says what comes next:

- `DONE`: it succeeded;
- `FAIL` with a reason: a final failure (not retryable, attempts used up, throttled, abandoned);
- `RELOGIN`: the session is gone; log in again, then the next attempt goes at once;
- `RETRY` after `wait_s`: back off, then the next attempt;
- `ABANDON` after `wait_s`: the backoff would outlast the user's patience; wait, then fail
  `abandoned`.

`SessionHealth` is the session side: after `clients.session_lost_after_timeouts` timeouts in a
row the app drops its session (a token refresh that timed out logs the user out), so the next
attempt fails `auth` without sending anything and the user logs in again.
"""

from __future__ import annotations

import math
from typing import Any, Final, NamedTuple

from sim.rules.outcomes import ABANDONED, AUTH, OK, THROTTLED, TIMEOUT
from sim.rules.retry import RetryPolicy

DONE: Final = "done"
FAIL: Final = "fail"
RELOGIN: Final = "relogin"
RETRY: Final = "retry"
ABANDON: Final = "abandon"


class Step(NamedTuple):
    """What the client does next: `kind` (DONE, FAIL, RELOGIN, RETRY, ABANDON), seconds to wait
    first, and the failure reason (FAIL; ABANDON fails `abandoned` after the wait)."""

    kind: str
    wait_s: float = 0.0
    reason: str = ""


_DONE = Step(DONE)
_RELOGIN = Step(RELOGIN)


class Command:
    """One command a client runs: its class's name and spec, when it started (seconds), the
    first LLM call's lengths when a trace gives them (-1: drawn from the class), and its order
    across attempts (`sim.rules.orders.OrderState`, for an order-placing class; None until then)."""

    __slots__ = ("name", "cls", "t0", "prompt0", "output0", "order")

    def __init__(self, name: str, cls: Any, t0: float, prompt0: int = -1, output0: int = -1) -> None:
        self.name, self.cls, self.t0, self.prompt0, self.output0 = name, cls, t0, prompt0, output0
        self.order: Any = None


class SessionHealth:
    """Timeouts in a row on one session; `lost` once they reach the scenario's limit."""

    __slots__ = ("limit", "timeouts")

    def __init__(self, limit: int | None) -> None:
        self.limit, self.timeouts = limit, 0

    def after(self, outcome: str) -> bool:
        """Count an attempt's outcome; True when the app now drops its session."""
        if outcome == OK:
            self.timeouts = 0
            return False
        if outcome != TIMEOUT or not self.limit:
            return False
        self.timeouts += 1
        if self.timeouts >= self.limit:
            self.timeouts = 0
            return True
        return False


class CommandAttempts:
    """The attempts of one command that started at `t0` (seconds)."""

    __slots__ = ("policy", "max_attempts", "give_up", "attempt", "sent")

    def __init__(self, policy: RetryPolicy, t0: float) -> None:
        spec = policy.spec
        self.policy = policy
        self.max_attempts = spec.max_attempts
        self.give_up = t0 + spec.abandon_after_s if spec.abandon_after_s else math.inf
        self.attempt = 0  # attempts made so far (the next one's index)
        self.sent = False  # whether the current attempt went out

    def start(self) -> bool:
        """Before an attempt: False when the policy refuses to send it (the outcome is then
        `throttled`, with nothing sent); True when it goes out (the retry budget counts it)."""
        p = self.policy
        if p.may_refuse and p.refuse(self.attempt):
            self.sent = False
            return False
        if p.counts_sent:
            p.sent(self.attempt)
        self.sent = True
        return True

    def time_limit(self, now: float) -> float:
        """When the attempt that starts at `now` stops being waited for."""
        return min(now + self.policy.timeout_s, self.give_up)

    def expired(self, limit: float) -> str:
        """The outcome of an attempt still unanswered at its `time_limit`."""
        return ABANDONED if limit >= self.give_up else TIMEOUT

    def after(self, outcome: str, now: float) -> Step:
        """What comes after an attempt that ended with `outcome` at `now`."""
        p = self.policy
        if self.sent and p.counts_answers:
            p.answered(outcome)
        if outcome == OK:
            return _DONE
        self.attempt += 1
        kind = next_kind(p, outcome, self.attempt)
        if kind == FAIL:
            return Step(FAIL, 0.0, outcome)
        if kind == RELOGIN:
            return _RELOGIN
        wait = p.backoff_s(self.attempt - 1)
        if now + wait >= self.give_up:
            return Step(ABANDON, max(0.0, self.give_up - now), ABANDONED)
        return Step(RETRY, wait)


def next_kind(policy: RetryPolicy, outcome: str, attempts_made: int) -> str:
    """After a failed attempt, with `attempts_made` attempts so far: FAIL, RELOGIN or RETRY (the
    part of `CommandAttempts.after` that needs no clock; the fleet engine applies it to counts)."""
    if outcome in (THROTTLED, ABANDONED) or not policy.retryable(outcome) or attempts_made >= policy.spec.max_attempts:
        return FAIL
    return RELOGIN if outcome == AUTH else RETRY


def login_retry_wait(policy: RetryPolicy, attempt: int) -> float | None:
    """After login attempt `attempt` (0-based) failed: seconds to wait before the next one, or
    None when the client gives up logging in (the command then fails `auth`)."""
    if attempt + 1 >= policy.spec.max_attempts:
        return None
    return policy.backoff_s(attempt)
