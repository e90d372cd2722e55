"""Rate limits: token buckets at the gateway, one global and one per user.

A request takes one token; without one it is rejected (HTTP 429, outcome `rejected`), and the
bucket says how long until the next token. The per-user bucket is checked first, so a user over
their own limit does not drain the global bucket.
"""

from __future__ import annotations

from sim.scenario.services import RateLimit


class TokenBucket:
    """`rate_per_s` tokens a second, at most `burst` saved up; full at `now`."""

    __slots__ = ("rate_per_s", "burst", "tokens", "stamp")

    def __init__(self, rate_per_s: float, burst: float, now: float = 0.0) -> None:
        self.rate_per_s, self.burst, self.tokens, self.stamp = rate_per_s, burst, burst, now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate_per_s)
            self.stamp = now

    def take(self, now: float) -> float:
        """0.0 when a token was taken at `now`, else seconds until one will be there."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate_per_s

    def take_many(self, now: float, n: int) -> int:
        """Up to `n` requests at `now` (the fleet engine's batch of arrivals): how many get a token."""
        self._refill(now)
        k = min(n, int(self.tokens + 1e-9))
        self.tokens -= k
        return k

    def full(self, now: float) -> bool:
        """True when the bucket would be full at `now` (forgetting it changes nothing)."""
        return self.tokens + (now - self.stamp) * self.rate_per_s >= self.burst


class RateLimiter:
    """The gateway's limits from a scenario's `rate_limit` (None: no limit at all)."""

    MAX_USERS = 100_000  # beyond this many user buckets, full ones are forgotten (exactly: a new one is full)

    def __init__(self, spec: RateLimit | None, now: float = 0.0) -> None:
        g = spec.global_per_s if spec else None
        self.global_bucket = TokenBucket(g, spec.burst or max(1.0, g), now) if spec and g else None
        self.per_user_per_s = spec.per_user_per_s if spec else None
        self.per_user_burst = spec.per_user_burst if spec else 1.0
        self._users: dict[str, TokenBucket] = {}

    @property
    def limits(self) -> bool:
        return self.global_bucket is not None or bool(self.per_user_per_s)

    def user_bucket(self, now: float) -> TokenBucket | None:
        """A new user's bucket (full), or None when there is no per-user limit."""
        return TokenBucket(self.per_user_per_s, self.per_user_burst, now) if self.per_user_per_s else None

    def admit(self, user: TokenBucket | None, now: float) -> tuple[str, float] | None:
        """None when the request may go ahead, else (which limit: per_user or global, seconds to wait)."""
        if user is not None:
            wait = user.take(now)
            if wait:
                return "per_user", wait
        if self.global_bucket is not None:
            wait = self.global_bucket.take(now)
            if wait:
                return "global", wait
        return None

    def check(self, user: str, now: float) -> tuple[str, float] | None:
        """`admit` for a user named by a key (the stack keeps one bucket per key)."""
        bucket = None
        if self.per_user_per_s:
            bucket = self._users.get(user)
            if bucket is None:
                if len(self._users) >= self.MAX_USERS:
                    for u in [u for u, b in self._users.items() if b.full(now)]:
                        del self._users[u]
                bucket = self._users[user] = TokenBucket(self.per_user_per_s, self.per_user_burst, now)
        return self.admit(bucket, now)
