"""`create_app(config)`: the FastAPI app of the reference stack."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from loadtest.stack import admin, api, chat
from loadtest.stack.errors import APIError, install_handlers
from loadtest.stack.gateway import ADMITTED_SCOPE_KEY
from loadtest.stack.options import StackOptions, default_scenario
from loadtest.stack.state import Stack
from sim.scenario import Scenario

_TOO_LARGE = APIError(413, "request body too large", "request_too_large")


class _BodyTooLarge(Exception):
    pass


class Observe:
    """Pure ASGI middleware (streams pass through untouched): counts and times every request
    by route template and status, refuses bodies over `max_body_bytes` with 413, and marks the
    answers of requests the gateway admitted (`gateway.mark_admitted`)."""

    def __init__(self, app: Any, stack: Stack) -> None:
        self.app, self.stack = app, stack

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = [500]
        limit = self.stack.opts.max_body_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        seen = [0]

        async def counted_receive() -> dict[str, Any]:
            msg = await receive()
            seen[0] += len(msg.get("body", b""))
            if seen[0] > limit:  # a chunked body that grew past the limit
                raise _BodyTooLarge()
            return msg

        async def observed_send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]
                if ADMITTED_SCOPE_KEY in scope:
                    msg = {**msg, "headers": [*msg.get("headers", ()), *_admission_headers(scope[ADMITTED_SCOPE_KEY])]}
            await send(msg)

        try:
            if not declared.isdigit() or int(declared) > limit:
                raise _BodyTooLarge()
            await self.app(scope, counted_receive, observed_send)
        except _BodyTooLarge:
            await _send_json(observed_send, 413, _TOO_LARGE.body())
        finally:
            route = scope.get("route")
            labels = (scope.get("method", ""), getattr(route, "path", "unmatched"), str(status[0]))
            self.stack.metrics.requests.inc(labels)
            self.stack.metrics.latency.observe(labels, time.perf_counter() - t0)


def _admission_headers(wait_s: float | None) -> list[tuple[bytes, bytes]]:
    if wait_s is None:
        return [(b"x-surge-admitted", b"0")]
    return [(b"x-surge-admitted", b"1"), (b"server-timing", f"queue;dur={wait_s * 1e3:.3f}".encode())]


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": data})


def create_app(scenario: Scenario | None = None, options: StackOptions | None = None, *,
               llm_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The stack's ASGI app for a scenario (default: `DEFAULT_SCENARIO`). Components start in
    the app's lifespan (uvicorn runs it; with `httpx.ASGITransport` enter
    `app.router.lifespan_context(app)` yourself).

    `llm_transport` lets tests point the openai backend at another app in-process.
    """
    stack = Stack(scenario or default_scenario(), options or StackOptions(), llm_transport)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await stack.start()
        try:
            yield
        finally:
            await stack.stop()

    app = FastAPI(title="surge reference stack", version="0.1.0", lifespan=lifespan,
                  description="A small, honest agent stack: OpenAI-compatible chat, an ordering agent, "
                              "overload protection and fault injection. See README, 'Reference stack'.")
    app.state.stack = stack
    install_handlers(app)
    app.include_router(api.make_router(stack))
    app.include_router(chat.make_router(stack))
    app.include_router(admin.make_router(stack))
    app.add_middleware(Observe, stack=stack)
    return app
