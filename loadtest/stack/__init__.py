"""The surge reference agent stack: FastAPI + a real PyTorch LLM with continuous batching,
orders in SQLite, overload protection and fault injection. See README, "Reference stack".

Public API: `StackConfig`, `create_app(config)`, `serve(config, host, port)`.
Importing this package is light: torch and FastAPI load when an app is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loadtest.stack.config import StackConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["StackConfig", "create_app", "serve"]


def create_app(config: StackConfig | None = None, **kwargs: Any) -> FastAPI:
    """The stack's FastAPI app (see `loadtest.stack.app.create_app`)."""
    from loadtest.stack.app import create_app as _create

    return _create(config, **kwargs)


def serve(config: StackConfig | None = None, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Serve on uvicorn until SIGTERM/SIGINT, then drain (see `loadtest.stack.server.serve`)."""
    from loadtest.stack.server import serve as _serve

    _serve(config, host, port, **kwargs)
