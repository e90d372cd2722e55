"""`Stack`: every component of one stack instance, built from a scenario and `StackOptions`.

Randomness is explicit: one numpy Generator per stream (`sim.streams.Streams` from the run's
seed, with the simulator's stream names), so two stacks with one seed draw alike.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import numpy as np

from loadtest.stack.auth import TokenSessions
from loadtest.stack.faults import ActiveFault, FaultBoard
from loadtest.stack.gateway import HttpGateway
from loadtest.stack.inventory import StockStore
from loadtest.stack.llm import LLM, LocalLLM
from loadtest.stack.metrics import StackMetrics, watch_loop_lag, watch_thread_wake_lag
from loadtest.stack.options import StackOptions
from loadtest.stack.orders import OrderStore
from loadtest.stack.services import Downstream
from sim.rules.deadlines import Deadlines
from sim.scenario import Scenario
from sim.scenario.schema import FaultKind
from sim.scenario.services import LLMFleet, LocalModel
from sim.streams import Streams


class Stack:
    """The live parts of the stack; `start()`/`stop()` are called by the app's lifespan."""

    def __init__(self, sc: Scenario, opts: StackOptions, llm_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.scenario, self.opts = sc, opts
        self.seed = sc.run.seed if opts.seed is None else opts.seed
        self.metrics = StackMetrics()
        sv = sc.services
        self.faults = FaultBoard(sv.names() or ["gateway"])
        streams = Streams(self.seed)
        self.rng_agent = streams("stack.agent")
        self.deadlines = Deadlines.of(sc)
        d = self.deadlines
        self.gateway = HttpGateway(sc, self.faults, self.metrics, streams("service.gateway"))
        self.auth = (Downstream("auth", sv.auth, self.faults, self.metrics, streams("service.auth"), d)
                     if sv.auth else None)
        self.sessions = TokenSessions(opts.session_secret, sv.auth.session_ttl_s if sv.auth else 86_400.0,
                                 self.faults, self.seed)
        self.tools = {name: Downstream(name, t, self.faults, self.metrics, streams(f"service.{name}"), d)
                      for name, t in sv.tools.items()}
        fleet = sv.llm or LLMFleet()
        backend = fleet.backend
        self.llm: LLM
        if backend.type == "openai":
            from loadtest.stack.openai_backend import RemoteLLM

            self.llm = RemoteLLM(backend, opts, llm_transport)
        else:
            self.llm = LocalLLM(fleet, backend.model if backend.type == "local" else LocalModel(), opts,
                                self.faults, self.metrics, streams("service.llm"), self.seed)
        self.store = OrderStore(opts.db_path)
        self.stocks = {name: StockStore(self.store, name, t.inventory) for name, t in sv.tools.items() if t.inventory}
        self._inventory_rng = {name: streams(f"inventory.{name}") for name in sv.tools}
        self.ready = False
        self.draining = False
        self._lag_watch: asyncio.Task[None] | None = None
        self._wake_stop = threading.Event()
        self.metrics.registry.gauge("surge_ready", "1 when serving, 0 while starting or draining",
                                    lambda: [((), float(self.ready and not self.draining))])
        services = ([("auth", self.auth)] if self.auth else []) + list(self.tools.items())
        self.metrics.registry.gauge("surge_service_queue_depth", "calls waiting for a slot, per service",
                                    lambda: [((n, ), s.slots.waiting) for n, s in services], ("service",))
        self.metrics.registry.gauge("surge_service_capacity", "slots up, per service",
                                    lambda: [((n, ), s.slots.capacity) for n, s in services], ("service",))

    def inventory_rng(self, service: str) -> np.random.Generator:
        """The draws of a tool's item picks and wrong-item mistakes (the simulator's stream name)."""
        return self._inventory_rng[service]

    async def start(self) -> None:
        await self.store.open()
        self.llm.start()
        self._lag_watch = asyncio.get_running_loop().create_task(watch_loop_lag(self.metrics))
        self._wake_stop = threading.Event()
        threading.Thread(target=watch_thread_wake_lag, args=(self.metrics, self._wake_stop), daemon=True,
                         name="surge-wake-lag").start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        if self._lag_watch is not None:
            self._lag_watch.cancel()
            self._wake_stop.set()
        self.llm.stop()
        await self.store.close()

    def add_fault(self, kind: FaultKind, target: str, magnitude: float, duration_s: float) -> ActiveFault:
        """Apply a fault now; it ends by itself after `duration_s` (a timer on the event loop)."""
        f = self.faults.add(kind, target, magnitude, duration_s)
        asyncio.get_running_loop().call_later(duration_s, self.faults.expire)
        return f

    def health(self) -> dict[str, Any]:
        """What /readyz reports: replicas up and the state of each circuit breaker."""
        import time

        out: dict[str, Any] = {"ready": self.ready and not self.draining, "draining": self.draining}
        if isinstance(self.llm, LocalLLM):
            out["replicas_up"] = len(self.llm.up())
            out["replicas"] = len(self.llm.engines)
        now = time.monotonic()
        out["breakers"] = {n: t.breaker.state(now) for n, t in self.tools.items() if t.breaker}
        return out
