"""Configuration of the reference stack: frozen dataclasses with working defaults.

The stack runs with no scenario at all (`StackConfig()`); `StackConfig.from_scenario` fills
the same fields from a scenario's `services` and `workload`, with capacities scaled so that a
campaign-sized scenario fits on one machine.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from sim.dists import Constant, Exponential

Routing = Literal["round_robin", "random", "jsq", "power_of_two", "least_kv"]


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the local decoder-only transformer (random weights, seeded)."""

    name: str = "surge-tiny"
    layers: int = 2
    hidden: int = 128
    heads: int = 4
    vocab: int = 512
    max_context: int = 2048


@dataclass(frozen=True)
class LLMConfig:
    """The LLM fleet: replicas, each a continuous-batching engine, behind a router."""

    backend: Literal["local", "openai"] = "local"
    replicas: int = 2
    max_num_seqs: int = 32
    max_batched_tokens: int = 512
    chunked_prefill: bool = True
    kv_cache_tokens: int = 16_384
    block_tokens: int = 16
    routing: Routing = "jsq"
    queue_limit: int | None = 256  # waiting sequences per replica (None = unbounded)
    device: str = "auto"  # "auto" = cuda when present, else cpu
    torch_threads: int | None = None  # intra-op threads per process (None = torch default)
    base_url: str = ""  # openai backend only
    remote_model: str = "default"  # model name sent to the openai backend
    api_key: str = "none"


@dataclass(frozen=True)
class BreakerConfig:
    """Opens after `failure_threshold` consecutive failures, fails fast for `open_s` seconds."""

    failure_threshold: int = 20
    open_s: float = 5.0


@dataclass(frozen=True)
class ServiceConfig:
    """A downstream service (auth or a tool): concurrency slots, latency (seconds), errors."""

    concurrency: int = 64
    latency: Any = field(default_factory=lambda: Exponential(mean=0.005))
    error_rate: float = 0.0
    timeout_s: float = 5.0
    breaker: BreakerConfig | None = field(default_factory=BreakerConfig)


@dataclass(frozen=True)
class AuthConfig(ServiceConfig):
    """Login service; sessions are HMAC-signed tokens valid for `session_ttl_s` seconds.
    `require_for_chat`: chat completions need a session too (by default a session is checked
    when one is sent, and any other bearer token is an API key)."""

    session_ttl_s: float = 3600.0
    require_for_chat: bool = False
    latency: Any = field(default_factory=lambda: Constant(value=0.0))
    breaker: BreakerConfig | None = None


@dataclass(frozen=True)
class GatewayConfig:
    """Overload protection in front of chat and agent work."""

    global_per_s: float | None = None  # token bucket rate (None = no global limit)
    burst: float | None = None  # bucket size (default: one second of rate)
    per_user_per_s: float | None = None
    per_user_burst: float = 5.0
    concurrency: int = 64  # requests doing work at once
    queue_limit: int = 256  # requests waiting for a slot; beyond that 503
    discipline: Literal["fifo", "lifo"] = "fifo"
    deadline_drop: bool = True
    priority: dict[str, int] = field(default_factory=lambda: {"agent": 0, "chat": 1})


@dataclass(frozen=True)
class LLMStage:
    """An LLM call of the agent: `prompt_tokens` new tokens on top of the context so far, and
    `output_tokens` generated (both distributions, in tokens)."""

    prompt_tokens: Any
    output_tokens: Any


@dataclass(frozen=True)
class ToolStage:
    """A tool call of the agent; `result_tokens` (distribution or None) is what its answer
    adds to the context of later LLM calls."""

    tool: str
    result_tokens: Any = None


def _default_stages() -> tuple[LLMStage | ToolStage, ...]:
    return (
        LLMStage(Constant(value=64), Constant(value=16)),
        ToolStage("catalog"),
        ToolStage("order"),
        ToolStage("payment"),
        LLMStage(Constant(value=96), Constant(value=24)),
    )


def _default_tools() -> dict[str, ServiceConfig]:
    return {name: ServiceConfig() for name in ("catalog", "order", "payment")}


@dataclass(frozen=True)
class StackConfig:
    """Everything the stack reads. Defaults give a small stack that runs on a laptop CPU."""

    model: ModelConfig = field(default_factory=ModelConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    tools: dict[str, ServiceConfig] = field(default_factory=_default_tools)
    agent_stages: tuple[LLMStage | ToolStage, ...] = field(default_factory=_default_stages)
    # stages of each order-placing command class by name (body field `class`); agent_stages
    # runs when a command names none
    agent_classes: dict[str, tuple[LLMStage | ToolStage, ...]] = field(default_factory=dict)
    max_tokens_cap: int = 1024  # largest max_tokens a request may ask for
    default_max_tokens: int = 16
    max_body_bytes: int = 1_000_000
    admin_token: str = field(default_factory=lambda: os.environ.get("SURGE_ADMIN_TOKEN", "surge-admin"))
    session_secret: str = "surge-dev-session-secret"
    db_path: str = "surge-orders.db"
    order_lease_s: float = 60.0  # a pending order held longer than this may be taken over
    drain_timeout_s: float = 30.0
    seed: int = 0

    def with_(self, **changes: Any) -> StackConfig:
        """A copy with fields changed; nested sections take dicts (`llm={"replicas": 1}`)."""
        out: dict[str, Any] = {}
        for k, v in changes.items():
            cur = getattr(self, k)
            out[k] = dataclasses.replace(cur, **v) if isinstance(v, dict) and dataclasses.is_dataclass(cur) else v
        return dataclasses.replace(self, **out)

    @classmethod
    def from_scenario(cls, sc: Any, scale: float = 1.0) -> StackConfig:
        """The stack a scenario describes, capacities multiplied by `scale` (at least 1 each)."""
        from loadtest.stack.scenario_map import config_from_scenario

        return config_from_scenario(cls(), sc, scale)


def scaled(n: int | float | None, scale: float) -> Any:
    """`n * scale` rounded up to at least 1 (None stays None: unlimited stays unlimited)."""
    if n is None:
        return None
    if isinstance(n, int):
        return max(1, math.ceil(n * scale))
    return max(1e-9, n * scale)
