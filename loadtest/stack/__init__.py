"""The surge reference agent stack: FastAPI + a real PyTorch LLM with continuous batching,
orders in SQLite, overload protection and fault injection. See README, "Reference stack".

The stack reads the validated scenario (every mechanism it names, through `sim.rules`) and
`StackOptions` (what a scenario does not describe). Public API: `StackOptions`,
`create_app(scenario, options)`, `serve(scenario, options, host, port)`.
Importing this package is light: torch and FastAPI load when an app is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadtest.stack.options import StackOptions

if TYPE_CHECKING:
    from fastapi import FastAPI

    from sim.scenario import Scenario

__all__ = ["StackOptions", "create_app", "serve"]


def create_app(scenario: Scenario | None = None, options: StackOptions | None = None, **kwargs: Any) -> FastAPI:
    """The stack's FastAPI app (see `loadtest.stack.app.create_app`)."""
    from loadtest.stack.app import create_app as _create

    return _create(scenario, options, **kwargs)


def serve(scenario: Scenario | None = None, options: StackOptions | None = None, host: str = "127.0.0.1",
          port: int = 8000, **kwargs: Any) -> None:
    """Serve on uvicorn until SIGTERM/SIGINT, then drain (see `loadtest.stack.server.serve`)."""
    from loadtest.stack.server import serve as _serve

    _serve(scenario, options, host, port, **kwargs)
