"""What an attempt (or a call inside it) can end with: the failure reasons of the results format.

- `ok`
- `timeout`: no complete answer within the client's per-attempt timeout;
- `rejected`: a rate limit said no (HTTP 429);
- `shed`: overload protection dropped it: admission queue full or evicted, deadline passed in a
  queue, circuit breaker open, LLM replica queue full (HTTP 503/504);
- `error`: the service failed it (error rate, outage, replica down; HTTP 5xx, broken connection);
- `auth`: the session is gone (HTTP 401), log in again;
- `abandoned`: the user gave up on the command (`clients.abandon_after_s`);
- `throttled`: the client itself did not send it (retry budget, adaptive throttling);
- `conflict`: an inventory had no free units for the hold, but units held by others may come
  back when their holds lapse, or the command's own hold lapsed before it was confirmed (HTTP
  409 `inventory_conflict` / `hold_expired`; retryable when `clients.retry_on` says so);
- `sold_out`: an inventory has nothing left to sell for the hold (HTTP 409 `sold_out`; never
  retried: a business answer, not a failure of the system).
"""

from __future__ import annotations

from typing import Final

OK: Final = "ok"
TIMEOUT: Final = "timeout"
REJECTED: Final = "rejected"
SHED: Final = "shed"
ERROR: Final = "error"
AUTH: Final = "auth"
ABANDONED: Final = "abandoned"
THROTTLED: Final = "throttled"
CONFLICT: Final = "conflict"
SOLD_OUT: Final = "sold_out"
