"""Work that stops when its client goes: `while_connected(request, work)`.

A client that closed its connection is gone for real (not a timeout the server cannot see,
which is the scenario's `clients.cancel_on_timeout` rule): nobody can read the answer, so the
stack stops the work and frees what it holds. Streams learn it from Starlette (a write to a
closed connection); a plain request learns it here, by waiting on the server's `receive()`,
which gives `http.disconnect` when the connection closes (the body was read before, by
`edge.Edge`). Cancelling the work runs its own cleanup: a queued request leaves the admission
queue, a generating one aborts its sequence (the engine frees its KV cache at its next step)
and gives its gateway slot back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import Request

from loadtest.stack.errors import APIError

T = TypeVar("T")


class ClientGone(APIError):
    """The client closed its connection before the answer (499: nobody reads it)."""

    def __init__(self) -> None:
        super().__init__(499, "the client closed the connection", "client_closed_request")


async def until_disconnected(receive: Any) -> None:
    """Return when the connection's `http.disconnect` arrives."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def while_connected(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result, or `ClientGone` once the client has disconnected (the work cancelled
    and its cleanup done). Work that finishes as the client leaves keeps its result."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnected(request.receive))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this request itself was cancelled (shutdown): so is its work
        task.cancel()
        raise
    finally:
        watch.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, APIError):
        await task  # let it clean up before the slot counts are read again
    raise ClientGone()
