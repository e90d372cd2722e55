"""How clients behave: per-attempt timeout, retries with backoff, giving up, logging in again."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sim.scenario.services import Frozen

RetryReason = Literal["timeout", "rejected", "shed", "error", "auth", "conflict"]


class Backoff(Frozen):
    """Wait before retry n (n = 1, 2, ...): min(cap_s, base_s * multiplier^(n-1)), then jittered."""

    base_s: float = Field(default=0.5, ge=0, le=1e6, description="wait before the first retry, seconds")
    cap_s: float = Field(default=30, ge=0, le=1e6, description="longest wait between attempts, seconds")
    multiplier: float = Field(default=2.0, ge=1, le=100, description="growth of the wait per retry (2 = doubling)")
    jitter: Literal["none", "full", "equal"] = Field(
        default="full", description="none: the wait as computed; full: uniform in [0, wait]; equal: uniform in "
                                    "[wait/2, wait] (AWS Architecture Blog names)")


class Clients(Frozen):
    """How clients behave: per-attempt timeout, retries, giving up, logging in again."""

    timeout_s: float | None = Field(default=None, gt=0, le=1e7,
                                    description="per-attempt timeout, seconds; none = wait for ever")
    max_attempts: int = Field(default=1, ge=1, le=100, description="attempts per command, first try included "
                                                                   "(1 = no retries)")
    backoff: Backoff = Field(default_factory=Backoff, description="wait between attempts")
    retry_on: tuple[RetryReason, ...] = Field(
        default=("timeout", "rejected", "shed", "error"),
        description="failures that are retried: timeout, rejected (rate limit, 429), shed (queue full, "
                    "deadline, circuit open, 503), error (5xx), auth (session lost), conflict (an inventory's "
                    "units held by others, or the command's own hold lapsed; 409)")
    retry_budget_ratio: float | None = Field(
        default=None, ge=0, le=100, description="retries <= ratio x first tries over about the last minute, across "
                                                "all clients (0.1: retries at most 10% of first tries); none = no budget")
    adaptive_throttle_k: float | None = Field(
        default=None, ge=1, le=100, description="Google SRE client-side throttling: refuse locally with "
                                                "probability max(0, (requests - k x accepts) / (requests + 1)); "
                                                "k = 2 is the book's value; none = off")
    abandon_after_s: float | None = Field(
        default=None, gt=0, le=1e7, description="the user gives up a command this long after its first attempt, "
                                                "seconds; none = never")
    cancel_on_timeout: bool = Field(default=False, description="servers learn of a timeout and stop the work")
    relogin: bool = Field(default=True, description="a command that meets a lost session logs in again and "
                                                    "retries at once (false: it fails with reason auth, unless "
                                                    "retry_on has auth)")
    session_lost_after_timeouts: int | None = Field(
        default=None, ge=1, le=100,
        description="the app drops its session after this many timeouts in a row (e.g. a token refresh "
                    "that timed out logs the user out) and must log in again: overload becomes a login storm",
    )
