"""The services of an agent stack, as a scenario describes them: gateway, auth, tools, LLM fleet."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.dists import Distribution

_BIG = 1e12


class Frozen(BaseModel):
    """Base of every scenario object: immutable, no unknown keys, no NaN/inf, and no `true`
    where a number is expected (pydantic would read it as 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_number(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, v in data.items():
                f = cls.model_fields.get(key) if isinstance(v, bool) else None
                if f is not None and not _allows_bool(f.annotation):
                    raise ValueError(f"{key}: must be a number, not {str(v).lower()}")
        return data


def _allows_bool(annotation: Any) -> bool:
    return annotation is bool or any(_allows_bool(a) for a in get_args(annotation))


class RateLimit(Frozen):
    """Token buckets at the gateway; a request without a token is rejected (429)."""

    global_per_s: float | None = Field(default=None, gt=0, le=_BIG)
    burst: float | None = Field(default=None, ge=1, le=_BIG, description="global bucket size (default: 1 s of rate)")
    per_user_per_s: float | None = Field(default=None, gt=0, le=_BIG)
    per_user_burst: float = Field(default=5, ge=1, le=_BIG)


class Gateway(Frozen):
    """Admission control in front of the agent: at most `concurrency` commands in progress,
    the rest wait in a bounded queue (full queue = shed, 503)."""

    concurrency: int = Field(default=1_000_000, ge=1, le=10**9)
    queue_limit: int | None = Field(default=None, ge=0, le=10**9)
    discipline: Literal["fifo", "lifo"] = "fifo"
    deadline_drop: bool = Field(default=False, description="drop queued work whose client deadline has passed")
    priority: bool = Field(default=False, description="serve lower class `priority` numbers first")
    rate_limit: RateLimit | None = None


class CircuitBreaker(Frozen):
    """Opens after `failure_threshold` consecutive failures; fails fast for `open_s` seconds."""

    failure_threshold: int = Field(default=20, ge=1, le=10**6)
    open_s: float = Field(default=5.0, gt=0, le=_BIG)


class Service(Frozen):
    """A pool of `concurrency` servers with a queue: auth and every tool."""

    concurrency: int = Field(default=100, ge=1, le=10**9)
    latency: Distribution = Field(default_factory=lambda: {"type": "constant", "value": 0.05}, validate_default=True)  # type: ignore[assignment]
    error_rate: float = Field(default=0.0, ge=0, le=1)
    queue_limit: int | None = Field(default=None, ge=0, le=10**9)
    deadline_drop: bool = Field(default=False, description="a queued call whose client deadline has passed is "
                                "dropped (shed) instead of served (a server-side request timeout)")
    circuit_breaker: CircuitBreaker | None = None
    servers: float | None = Field(
        default=None, gt=0, le=1e9,
        description="a fluid pool instead of `concurrency` servers: this many servers, which may be fractional (a "
                    "scaled cell's share of a pool far larger than the cell: full-scale servers x population.scale). "
                    "A call waits its turn behind the work queued ahead of it (FIFO, work / servers), then takes its "
                    "latency; work reserved by a call its client gave up on is still done")

    @model_validator(mode="after")
    def _fluid(self) -> Service:
        if self.servers is not None and self.queue_limit is not None:
            raise ValueError("queue_limit: a fluid pool ('servers') has no queue limit")
        return self


class Auth(Service):
    session_ttl_s: float = Field(default=86_400, gt=0, le=_BIG)
    register_latency: Distribution | None = Field(
        default=None, description="seconds a new user's first login (registration: SMS code, account creation) "
                                  "holds an auth server; none = 'latency'")


class GpuSpec(Frozen):
    """One GPU: peak dense TFLOP/s for the dtype, HBM bandwidth, memory, and achievable fractions."""

    tflops: float = Field(gt=0, le=1e6)
    hbm_gb_s: float = Field(gt=0, le=1e6)
    memory_gb: float = Field(gt=0, le=1e5)
    mfu: float = Field(default=0.5, gt=0, le=1, description="fraction of peak FLOP/s reached in prefill")
    mbu: float = Field(default=0.7, gt=0, le=1, description="fraction of peak bandwidth reached in decode")
    count: int = Field(default=1, ge=1, le=1024, description="GPUs per replica (tensor parallel)")


class ModelSpec(Frozen):
    """A decoder-only transformer. For MoE models, `active_params_b` < `total_params_b`."""

    total_params_b: float = Field(gt=0, le=1e5)
    active_params_b: float | None = Field(default=None, gt=0, le=1e5)
    layers: int = Field(ge=1, le=10_000)
    hidden: int = Field(ge=1, le=10**6)
    kv_heads: int = Field(ge=1, le=10_000)
    head_dim: int = Field(ge=1, le=10_000)
    dtype_bytes: float = Field(default=2, gt=0, le=8)

    @property
    def active_params(self) -> float:
        return 1e9 * (self.active_params_b or self.total_params_b)

    @property
    def kv_bytes_per_token(self) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


class RooflineCost(Frozen):
    """Iteration time from GPU and model specs: prefill is compute-bound, decode memory-bound."""

    type: Literal["roofline"] = "roofline"
    gpu: GpuSpec
    model: ModelSpec
    overhead_s: float = Field(default=0.002, ge=0, le=10, description="fixed cost per batch step")


class FittedCost(Frozen):
    """Iteration time fitted to measurements:
    t = base_s + per_prefill_token_s * prefill + per_decode_seq_s * decodes + per_context_token_s * context."""

    type: Literal["fitted"] = "fitted"
    base_s: float = Field(ge=0, le=100)
    per_prefill_token_s: float = Field(ge=0, le=100)
    per_decode_seq_s: float = Field(ge=0, le=100)
    per_context_token_s: float = Field(default=0.0, ge=0, le=100)


CostModel = Annotated[RooflineCost | FittedCost, Field(discriminator="type")]


class Autoscaling(Frozen):
    min_replicas: int = Field(ge=0, le=100_000)
    max_replicas: int = Field(ge=1, le=100_000)
    target_utilisation: float = Field(default=0.7, gt=0, le=1)
    interval_s: float = Field(default=30, gt=0, le=_BIG)
    cold_start_s: float = Field(default=120, ge=0, le=_BIG)

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"'max_replicas' must be >= 'min_replicas' (got {self.max_replicas} < {self.min_replicas})")
        return self


class LocalModel(Frozen):
    """The reference stack's own PyTorch model (random weights)."""

    layers: int = Field(default=2, ge=1, le=64)
    hidden: int = Field(default=128, ge=8, le=8192)
    heads: int = Field(default=4, ge=1, le=128)
    vocab: int = Field(default=512, ge=16, le=200_000)
    max_context: int = Field(default=2048, ge=16, le=1_000_000)


class LocalBackend(Frozen):
    type: Literal["local"] = "local"
    model: LocalModel = Field(default_factory=LocalModel)


class OpenAIBackend(Frozen):
    type: Literal["openai"] = "openai"
    base_url: str
    model: str = "default"


Backend = Annotated[LocalBackend | OpenAIBackend, Field(discriminator="type")]


class LLMFleet(Frozen):
    """Replicas serving the LLM with continuous batching (one batch step at a time per replica)."""

    replicas: int = Field(default=1, ge=1, le=100_000)
    max_num_seqs: int = Field(default=64, ge=1, le=100_000)
    max_batched_tokens: int = Field(default=8192, ge=1, le=10**8)
    chunked_prefill: bool = True
    kv_cache_tokens: int | None = Field(default=None, ge=1, le=10**10, description="default: from GPU memory (roofline) or unbounded")
    routing: Literal["round_robin", "random", "jsq", "power_of_two", "least_kv"] = "jsq"
    queue_limit: int | None = Field(default=None, ge=0, le=10**9, description="waiting sequences per replica")
    cost_model: CostModel = Field(
        default_factory=lambda: FittedCost(base_s=0.005, per_prefill_token_s=2e-5, per_decode_seq_s=2e-4)
    )
    autoscaling: Autoscaling | None = None
    backend: Backend = Field(default_factory=LocalBackend)

    @model_validator(mode="after")
    def _weights_fit(self) -> LLMFleet:
        self.kv_tokens  # noqa: B018 - raises when the model does not fit in GPU memory
        return self

    @property
    def kv_tokens(self) -> int:
        """KV-cache capacity per replica, in tokens: explicit, else what GPU memory leaves after
        the weights (roofline), else unbounded (fitted cost model with no capacity given)."""
        if self.kv_cache_tokens is not None:
            return self.kv_cache_tokens
        cm = self.cost_model
        if not isinstance(cm, RooflineCost):
            return 10**12
        weights = cm.model.total_params_b * 1e9 * cm.model.dtype_bytes
        free = 0.9 * cm.gpu.memory_gb * 1e9 * cm.gpu.count - weights
        if free <= 0:
            raise ValueError("model weights do not fit in GPU memory")
        return int(free / cm.model.kv_bytes_per_token)


class Services(Frozen):
    gateway: Gateway | None = None
    auth: Auth | None = None
    llm: LLMFleet | None = None
    tools: dict[str, Service] = Field(default_factory=dict)

    def names(self) -> list[str]:
        """Every service a fault or stage can name."""
        fixed = [n for n in ("gateway", "auth", "llm") if getattr(self, n) is not None]
        return fixed + list(self.tools)
