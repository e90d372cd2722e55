"""`Stack`: every component of one stack instance, built from a `StackConfig`.

Randomness is explicit: one numpy Generator per stream (router, llm faults, each service),
spawned from `cfg.seed` with `SeedSequence`, so two stacks with one seed draw alike.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from loadtest.stack.auth import Sessions
from loadtest.stack.config import StackConfig
from loadtest.stack.faults import FaultBoard
from loadtest.stack.gateway import Gateway
from loadtest.stack.llm import LLM, LocalLLM
from loadtest.stack.metrics import StackMetrics
from loadtest.stack.orders import OrderStore
from loadtest.stack.services import Downstream


class Stack:
    """The live parts of the stack; `start()`/`stop()` are called by the app's lifespan."""

    def __init__(self, cfg: StackConfig, llm_transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.metrics = StackMetrics()
        names = ["gateway", "auth", "llm", *cfg.tools]
        self.faults = FaultBoard(names)
        streams = np.random.SeedSequence(cfg.seed).spawn(3 + len(cfg.tools))
        rngs = [np.random.default_rng(s) for s in streams]
        self.rng_agent = rngs[2]
        self.gateway = Gateway(cfg.gateway, self.metrics)
        self.auth = Downstream("auth", cfg.auth, self.faults, self.metrics, rngs[1])
        self.sessions = Sessions(cfg.session_secret, cfg.auth.session_ttl_s, self.faults, cfg.seed)
        self.tools = {name: Downstream(name, t, self.faults, self.metrics, rngs[3 + i])
                      for i, (name, t) in enumerate(cfg.tools.items())}
        self.llm: LLM
        if cfg.llm.backend == "openai":
            from loadtest.stack.openai_backend import RemoteLLM

            self.llm = RemoteLLM(cfg, llm_transport)
        else:
            self.llm = LocalLLM(cfg, self.faults, self.metrics, rngs[0])
        self.store = OrderStore(cfg.db_path)
        self.ready = False
        self.draining = False
        self.metrics.registry.gauge("surge_ready", "1 when serving, 0 while starting or draining",
                                    lambda: [((), float(self.ready and not self.draining))])

    async def start(self) -> None:
        await self.store.open()
        self.llm.start()
        self.ready = True

    async def stop(self) -> None:
        self.ready = False
        self.llm.stop()
        await self.store.close()

    def health(self) -> dict[str, Any]:
        """What /readyz reports: replicas up and the state of each circuit breaker."""
        out: dict[str, Any] = {"ready": self.ready and not self.draining, "draining": self.draining}
        if isinstance(self.llm, LocalLLM):
            out["replicas_up"] = len(self.llm.up())
            out["replicas"] = len(self.llm.engines)
        out["breakers"] = {n: t.breaker.state for n, t in self.tools.items() if t.breaker}
        return out
