"""`serve(config)`: run the stack on uvicorn until SIGTERM or SIGINT, then drain.

On the signal uvicorn stops accepting connections, lets requests in flight finish (up to
`config.drain_timeout_s` seconds; streams included), then the app's lifespan stops the LLM
engines and closes the order database. `/readyz` answers 503 from the signal on, so a load
balancer polling it stops sending work before the listener closes.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn

from loadtest.stack.app import create_app
from loadtest.stack.options import StackOptions
from sim.scenario import Scenario

log = logging.getLogger("surge.stack")


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
    app = create_app(scenario, opts)
    uv = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="on",
                        timeout_graceful_shutdown=int(opts.drain_timeout_s), timeout_keep_alive=30,
                        backlog=4096)
    DrainingServer(uv, app.state.stack).run()
