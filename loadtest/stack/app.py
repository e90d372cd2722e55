"""`create_app(scenario, options)`: the FastAPI app of the reference stack, behind `edge.Edge`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from loadtest.stack import admin, api, chat, completions
from loadtest.stack.edge import Edge
from loadtest.stack.errors import install_handlers
from loadtest.stack.options import StackOptions, default_scenario
from loadtest.stack.state import Stack
from sim.scenario import Scenario


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

    # FastAPI's own OpenTelemetry is off: the stack has its Prometheus metrics, and the check
    # whether a provider is configured runs on every request (rejections included)
    app = FastAPI(title="surge reference stack", version="0.1.0", lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="A small, honest agent stack: OpenAI-compatible chat, an ordering agent, "
                              "overload protection and fault injection. See README, 'Reference stack'.")
    app.state.stack = stack
    install_handlers(app)
    app.include_router(api.make_router(stack))
    app.include_router(chat.make_router(stack))
    app.include_router(completions.make_router(stack))
    app.include_router(admin.make_router(stack))
    app.add_middleware(Edge, stack=stack)
    return app
