"""`Edge`: the pure ASGI middleware every request passes first, before FastAPI does any work.

In order, for each HTTP request:
1. a declared body over `max_body_bytes` is refused at once (413, from the headers);
2. a route behind the gateway whose arrival the admission queue would shed now is answered 503
   with Retry-After from its headers alone (`HttpGateway.shed_early`, the shared admission
   rule): no body read, no JSON, no routing, no session check. Rejections must be cheap, or at
   overload the work of refusing starves the work admitted (Google SRE, "Handling Overload");
3. the body is read here, whole, within `body_timeout_s` (else 408) and within
   `max_body_bytes` however it is framed (a chunked body that grows past the limit: 413); the
   app then gets it in one message, and later `receive()` calls reach the server (so a handler
   can learn that its client has gone, `disconnect.while_connected`);
4. every request is counted and timed by route template and status, and the answers of
   requests the gateway admitted carry `X-Surge-Admitted: 1` (`gateway.mark_admitted`).
Answers given here close the connection when part of the body may still be unread.

`GET /healthz` (liveness) is answered here, before everything else, from bytes made once: it
must stay cheap and fast when the app is overloaded (the route in `admin.py` documents it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from typing import Any

from loadtest.stack.errors import APIError
from loadtest.stack.gateway import ADMITTED_SCOPE_KEY
from loadtest.stack.state import Stack

CLASS_HEADER = b"x-surge-class"
# routes behind the gateway: (method, path) -> whether the body may name the command class
ADMITTED_ROUTES = {("POST", "/v1/chat/completions"): False, ("POST", "/v1/completions"): False,
                   ("POST", "/v1/agent/commands"): True}
_TOO_LARGE = APIError(413, "request body too large", "request_too_large")
_TOO_SLOW = APIError(408, "the request body did not arrive in time", "request_timeout")


DRAIN_FACTOR = 4  # a refused body up to this many times the limit is read (and dropped) first

HEALTHZ_PATH = "/healthz"
HEALTHZ_BODY = {"status": "ok"}
_HEALTHZ_BYTES = json.dumps(HEALTHZ_BODY).encode()
_HEALTHZ_START = {"type": "http.response.start", "status": 200, "headers": [
    (b"content-type", b"application/json"), (b"content-length", str(len(_HEALTHZ_BYTES)).encode())]}


class _Refused(Exception):
    """Answer `error` now; `drain`: first read and drop what is left of the body (bounded), so
    that closing the connection does not reset it before the client has read the answer."""

    def __init__(self, error: APIError, drain: bool = False) -> None:
        self.error, self.drain = error, drain


class Edge:
    """See the module docstring; `stack` gives the options, the gateway and the metrics."""

    def __init__(self, app: Any, stack: Stack) -> None:
        self.app, self.stack = app, stack
        self.limit = stack.opts.max_body_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        if scope["path"] == HEALTHZ_PATH and scope["method"] in ("GET", "HEAD"):
            return await self._healthz(scope, send, t0)
        status = [0]

        async def observed_send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
                if ADMITTED_SCOPE_KEY in scope:
                    msg = {**msg, "headers": [*msg.get("headers", ()), *_admission_headers(scope[ADMITTED_SCOPE_KEY])]}
            await send(msg)

        try:
            self._check_head(scope)
            body = await self._read_body(receive)
            if body is None:
                status[0] = 499  # the client left before its body arrived
                return
            await self.app(scope, _replay(body, receive), observed_send)
        except _Refused as r:
            if (scope["method"], scope["path"]) in ADMITTED_ROUTES:
                scope["surge.route"] = scope["path"]  # answered before routing: the path is the template
            if r.drain:
                await self._drain(receive)
            await _send_error(observed_send, r.error, close=r.error.status in (408, 413))
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or scope.get("surge.route") or "unmatched"
            labels = (scope.get("method", ""), path, str(status[0] or 500))
            self.stack.metrics.requests.inc(labels)
            self.stack.metrics.latency.observe(labels, time.perf_counter() - t0)

    async def _healthz(self, scope: dict[str, Any], send: Any, t0: float) -> None:
        """Liveness from bytes made once; counted and timed like any request."""
        await send(_HEALTHZ_START)
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else _HEALTHZ_BYTES})
        labels = (scope["method"], HEALTHZ_PATH, "200")
        self.stack.metrics.requests.inc(labels)
        self.stack.metrics.latency.observe(labels, time.perf_counter() - t0)

    def _check_head(self, scope: dict[str, Any]) -> None:
        """Refuse from the request head alone: a declared body too large, an arrival to shed."""
        declared = None
        klass = None
        for name, value in scope.get("headers") or ():
            if name == b"content-length":
                declared = value
            elif name == CLASS_HEADER:
                klass = value.decode("latin-1")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            raise _Refused(_TOO_LARGE, drain=declared.isdigit() and int(declared) <= DRAIN_FACTOR * self.limit)
        class_in_body = ADMITTED_ROUTES.get((scope["method"], scope["path"]))
        if class_in_body is not None:
            shed = self.stack.gateway.shed_early(klass, class_in_body)
            if shed is not None:
                scope[ADMITTED_SCOPE_KEY] = None
                raise _Refused(shed)

    async def _read_body(self, receive: Any) -> bytes | None:
        """The whole body (None if the client disconnected first); `_Refused` with 413 or 408."""
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.stack.opts.body_timeout_s):
                while True:
                    msg = await receive()
                    if msg["type"] == "http.disconnect":
                        return None
                    chunk = msg.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:  # a chunked body that grew past the limit
                        raise _Refused(_TOO_LARGE, drain=more_body(msg))
                    parts.append(chunk)
                    if not msg.get("more_body", False):
                        return b"".join(parts)
        except TimeoutError:
            raise _Refused(_TOO_SLOW) from None


    async def _drain(self, receive: Any) -> None:
        """Read and drop the rest of a refused body: at most `DRAIN_FACTOR` x the limit, within
        the body timeout (a lingering close, as web servers do before closing on unread input)."""
        left = DRAIN_FACTOR * self.limit
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stack.opts.body_timeout_s):
                while left > 0:
                    msg = await receive()
                    left -= len(msg.get("body", b""))
                    if not more_body(msg):
                        return


def more_body(msg: dict[str, Any]) -> bool:
    """Whether more of the request body follows this ASGI message."""
    return msg["type"] == "http.request" and bool(msg.get("more_body", False))


def _replay(body: bytes, receive: Any) -> Any:
    """A `receive` that gives the buffered body once, then passes through to the server."""
    sent = False

    async def replayed() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # type: ignore[no-any-return]

    return replayed


def _admission_headers(wait_s: float | None) -> list[tuple[bytes, bytes]]:
    if wait_s is None:
        return [(b"x-surge-admitted", b"0")]
    return [(b"x-surge-admitted", b"1"), (b"server-timing", f"queue;dur={wait_s * 1e3:.3f}".encode())]


async def _send_error(send: Any, error: APIError, close: bool) -> None:
    head, data = _error_bytes(error.status, error.message, error.code, error.param,
                              tuple(error.headers.items()), close)
    await send({"type": "http.response.start", "status": error.status, "headers": list(head)})
    await send({"type": "http.response.body", "body": data})


@functools.lru_cache(maxsize=256)
def _error_bytes(status: int, message: str, code: str | None, param: str | None,
                 extra: tuple[tuple[str, str], ...], close: bool) -> tuple[tuple[tuple[bytes, bytes], ...], bytes]:
    """The headers and body of an answer given here. Made once per distinct answer: the ones
    that come often under overload (a shed 503 differs only in its Retry-After, whole seconds)
    then cost no JSON and no header building."""
    data = json.dumps(APIError(status, message, code, param).body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra]
    if close:
        headers.append((b"connection", b"close"))
    return tuple(headers), data
