"""`serve(scenario, options)`: run the stack on uvicorn until SIGTERM or SIGINT, then drain.

On the signal uvicorn stops accepting connections, lets requests in flight finish (up to
`options.drain_timeout_s` seconds; streams included), then the app's lifespan stops the LLM
engines and closes the order database. `/readyz` answers 503 from the signal on, so a load
balancer polling it stops sending work before the listener closes.

Connections are bounded in time (`StackOptions`): uvicorn closes an idle keep-alive connection
only after a response, and waits for a request head forever, so `TimedHttpProtocol` adds the
rest: a connection that opens and sends nothing, or sends its head slowly, is answered 408 and
closed `header_timeout_s` after it opened (or after its request's first byte); a head over
`MAX_HEAD_BYTES` is answered 431 and closed. The body's own limit is `edge.Edge`'s.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from loadtest.stack.app import create_app
from loadtest.stack.options import StackOptions
from sim.scenario import Scenario

log = logging.getLogger("surge.stack")
MAX_HEAD_BYTES = 64 * 1024  # request line and headers together


def _closing_answer(status: bytes, message: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: "
            + str(len(message)).encode() + b"\r\nconnection: close\r\n\r\n" + message)


class _HeadTooLarge(Exception):
    pass


class TimedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head, and
    an idle limit from the moment a connection opens. Set `header_timeout_s` and
    `keep_alive_s` on a subclass (`timed_protocol`)."""

    header_timeout_s = 10.0
    keep_alive_s = 30.0

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.timeout_keep_alive = self.keep_alive_s  # type: ignore[assignment]  # uvicorn takes whole seconds only
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # the first request's head is due header_timeout_s after opening

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            return super().send_400_response(msg)
        self.transport.write(_closing_answer(b"431 Request Header Fields Too Large", b"request head too large"))
        self.transport.close()

    def _count_head(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge()  # stops the parser; uvicorn answers through send_400_response

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_closing_answer(b"408 Request Timeout", b"request head not received in time"))
            self.transport.close()


def timed_protocol(opts: StackOptions) -> type[TimedHttpProtocol]:
    """`TimedHttpProtocol` with the deployment's timeouts."""
    return type("StackHttpProtocol", (TimedHttpProtocol,), {"header_timeout_s": opts.header_timeout_s,
                                                             "keep_alive_s": opts.keep_alive_s})


class DrainingServer(uvicorn.Server):
    """uvicorn's server, telling the stack it is draining as soon as a signal arrives."""

    def __init__(self, config: uvicorn.Config, stack: Any) -> None:
        super().__init__(config)
        self.stack = stack

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self.stack.draining:
            log.warning("signal %s: draining in-flight work (up to %.0f s)", sig, self.config.timeout_graceful_shutdown)
        self.stack.draining = True
        super().handle_exit(sig, frame)


def serve(scenario: Scenario | None = None, options: StackOptions | None = None, host: str = "127.0.0.1",
          port: int = 8000, log_level: str = "warning") -> None:
    """Serve the stack on `host:port` (loopback by default); blocks until shut down."""
    opts = options or StackOptions()
    sys.setswitchinterval(opts.gil_switch_interval_s)  # a whole process setting: set where the process serves
    app = create_app(scenario, opts)
    # No proxy-header rewriting: nothing sits in front of the stack, and uvicorn would trust
    # X-Forwarded-For from any loopback client (the rate limiter keys on the address), at a
    # cost on every request. No Server header: every answer, 503s above all, stays minimal.
    uv = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                        timeout_graceful_shutdown=int(opts.drain_timeout_s), http=timed_protocol(opts),
                        backlog=4096, proxy_headers=False, server_header=False)
    DrainingServer(uv, app.state.stack).run()
