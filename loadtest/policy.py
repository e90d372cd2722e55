"""The scenario's client policy, for real HTTP: what an answer means, when to retry, how long
to wait. Backoff, retry budget and throttling are `sim.rules.retry.RetryPolicy`, the simulator's own,
so measurement and simulation retry the same way and count the same things. (The budget and the
throttle look at this process's traffic; with several workers each keeps its own share.)

Outcomes (the simulator's failure reasons):
- `timeout`: no complete answer within `clients.timeout_s` (measured by the client);
- `rejected`: 429, a rate limit;
- `shed`: 503 overloaded / queue full / evicted / circuit breaker open, 504 deadline passed at
  the server (409 from other servers too);
- `auth`: 401, the session is gone (re-login when `clients.relogin`);
- `conflict`: 409 `inventory_conflict` or `hold_expired` (an inventory had no free units, or the
  command's hold lapsed); `sold_out`: 409 `sold_out`;
- `error`: any other failure (5xx from a tool or the model, a broken connection, a bad body);
- `throttled`: refused on the client by the retry budget or adaptive throttling (no traffic).
"""

from __future__ import annotations

from sim.rules.outcomes import (
    ABANDONED,
    AUTH,
    CONFLICT,
    ERROR,
    OK,
    REJECTED,
    SHED,
    SOLD_OUT,
    THROTTLED,
    TIMEOUT,
)
from sim.rules.retry import RetryPolicy

# 503 codes of overload protection (the stack's gateway, LLM queue, tool breakers): shed, as in the simulator
_SHED_CODES = ("overloaded", "breaker_open", "circuit_open", "deadline_exceeded", "not_ready")
# 409 codes of an inventory service (`loadtest/stack/orderwork.py`)
_INVENTORY_CODES = {"inventory_conflict": CONFLICT, "hold_expired": CONFLICT, "sold_out": SOLD_OUT}


def classify(status: int, code: str | None = None) -> str:
    """The outcome of an HTTP answer (`code` is the OpenAI-style `error.code`, if any)."""
    if 200 <= status < 300:
        return OK
    if status == 429:
        return REJECTED
    if status == 401:
        return AUTH
    if status == 409 and code in _INVENTORY_CODES:
        return _INVENTORY_CODES[code]
    if status in (409, 504):
        return SHED
    if status == 503:
        return SHED if code is None or any(c in code for c in _SHED_CODES) else ERROR
    return ERROR


def classify_stream_error(code: str) -> str:
    """The outcome of an error reported inside a stream that had started (headers sent)."""
    return SHED if code in ("deadline_exceeded", "overloaded") else ERROR


def admitted(status: int, code: str | None = None) -> bool:
    """Whether an answer shows the attempt got past the gateway, for a server that does not say so
    (the reference stack does: `X-Surge-Admitted`): every answer but 429, 401, 409, and 503/504
    from the admission queue."""
    if status == 409 and code in _INVENTORY_CODES:
        return True  # the inventory answered: the attempt got past the gateway
    if status in (0, 401, 409, 429):
        return False
    return not (status in (503, 504) and code in ("overloaded", "deadline_exceeded", "not_ready"))

__all__ = ["ABANDONED", "AUTH", "CONFLICT", "ERROR", "OK", "REJECTED", "SHED", "SOLD_OUT", "THROTTLED", "TIMEOUT",
           "RetryPolicy",
           "admitted", "classify", "classify_stream_error"]
