"""The services of an agent stack, as a scenario describes them: gateway, auth, tools, LLM fleet."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sim.dists import Constant, Distribution

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

    global_per_s: float | None = Field(default=None, gt=0, le=_BIG, description="attempts per second the whole "
                                                                               "gateway admits; none = no limit")
    burst: float | None = Field(default=None, ge=1, le=_BIG, description="global bucket size, attempts (default: "
                                                                         "1 s of rate)")
    per_user_per_s: float | None = Field(default=None, gt=0, le=_BIG, description="attempts per second one "
                                                                                 "session may send; none = no limit")
    per_user_burst: float = Field(default=5, ge=1, le=_BIG, description="per-session bucket size, attempts")


class AdaptiveLifo(Frozen):
    """The parameters of discipline `adaptive_lifo` (`sim.rules.admission.AdaptiveLifo`)."""

    interval_s: float = Field(default=0.1, ge=0, le=3600, description="a queue not empty for this long, seconds, "
                                                                     "is a standing queue: it then serves the "
                                                                     "newest first and drops stale waiters")
    target_s: float = Field(default=0.005, ge=0, le=3600, description="in a standing queue a waiter that has waited "
                                                                     "this long, seconds, is dropped (503 with "
                                                                     "Retry-After: fail fast instead of timing out)")

    @model_validator(mode="after")
    def _target_within_interval(self) -> AdaptiveLifo:
        if self.target_s > self.interval_s:
            raise ValueError(f"'target_s' must be <= 'interval_s' (got {self.target_s:g} > {self.interval_s:g})")
        return self


class Gateway(Frozen):
    """Admission control in front of the agent: at most `concurrency` commands in progress,
    the rest wait in a bounded queue (full queue = shed, 503)."""

    concurrency: int = Field(default=1_000_000, ge=1, le=10**9, description="commands in progress at once past "
                                                                            "the gateway")
    queue_limit: int | None = Field(default=None, ge=0, le=10**9, description="commands waiting for a slot; one "
                                                                              "more is shed (503); none = unbounded")
    discipline: Literal["fifo", "lifo", "adaptive_lifo"] = Field(
        default="fifo", description="order of the wait queue: fifo (oldest first), lifo (newest first, keeps "
                                    "latency low under overload) or adaptive_lifo (fifo until the queue stands, "
                                    "then newest first and stale waiters dropped: see `adaptive_lifo`)")
    adaptive_lifo: AdaptiveLifo = Field(default_factory=AdaptiveLifo,
                                        description="when discipline adaptive_lifo turns a queue to newest first "
                                                    "and which waiters it drops (ignored by fifo and lifo)")
    deadline_drop: bool = Field(default=False, description="drop queued work whose client deadline has passed")
    priority: bool = Field(default=False, description="serve lower class `priority` numbers first")
    rate_limit: RateLimit | None = Field(default=None, description="token buckets checked before admission "
                                                                   "(429); none = no rate limit")


class CircuitBreaker(Frozen):
    """Opens after `failure_threshold` consecutive failures; fails fast for `open_s` seconds."""

    failure_threshold: int = Field(default=20, ge=1, le=10**6, description="consecutive failed calls that open "
                                                                           "the breaker")
    open_s: float = Field(default=5.0, gt=0, le=_BIG, description="how long an open breaker fails calls at once, "
                                                                  "seconds, before letting one through")


class HotItems(Frozen):
    """Items most holds ask for: the premiere's 8 pm back rows, the festival's sold-out snack."""

    items: int = Field(ge=1, le=10**6, description="how many items are hot: the first ones, in order of preference")
    share: float = Field(gt=0, le=1, description="fraction of holds that ask for a hot item (the rest ask for another)")


class Inventory(Frozen):
    """A finite stock a tool sells (`sim.rules.inventory`): `items` distinct items (seat blocks,
    flights, rooms, SKUs) in order of preference, `stock` units each. A hold takes units for
    `hold_s` seconds; confirmed, they are sold; unconfirmed, they lapse back."""

    items: int = Field(ge=1, le=100_000, description="distinct items, most preferred first")
    stock: int = Field(ge=0, le=10**9, description="units of each item at the start (seats per block, rooms, packs)")
    hold_s: float = Field(gt=0, le=1e7, description="seconds a hold keeps its units before they lapse back")
    hot: HotItems | None = Field(default=None, description="items most holds ask for (none: every item alike)")
    fallback: bool = Field(default=True, description="when the wanted item has no free units, take the most "
                                                     "preferred item that has (the agent offers the next best)")
    unit_price: float = Field(default=1.0, ge=0, le=1e7,
                              description="price of one unit in cost.currency; an order pays quantity x unit_price")

    @model_validator(mode="after")
    def _hot_fits(self) -> Inventory:
        h = self.hot
        if h is not None and (h.items > self.items or (h.items == self.items and h.share < 1)):
            raise ValueError(f"'hot.items' must be < 'items', or equal with share 1 (got {h.items} of {self.items})")
        return self


class Service(Frozen):
    """A pool of `concurrency` servers with a queue: auth and every tool. A tool with an
    `inventory` is an inventory service: its stages hold and confirm units of its stock."""

    concurrency: int = Field(default=100, ge=1, le=10**9, description="calls served at once (servers, "
                                                                      "connections or worker slots)")
    latency: Distribution = Field(default_factory=lambda: Constant(value=0.05),
                                  description="service time of one call, seconds, not counting its queue wait")
    error_rate: float = Field(default=0.0, ge=0, le=1, description="probability that a served call fails (5xx)")
    queue_limit: int | None = Field(default=None, ge=0, le=10**9, description="calls waiting for a server; one "
                                                                              "more is shed; none = unbounded")
    deadline_drop: bool = Field(default=False, description="a queued call whose client deadline has passed is "
                                "dropped (shed) instead of served (a server-side request timeout)")
    circuit_breaker: CircuitBreaker | None = Field(default=None, description="callers stop calling after repeated "
                                                                             "failures; none = no breaker")
    inventory: Inventory | None = Field(default=None, description="a finite stock this tool sells: its stages hold "
                                                                  "and confirm units (sim.rules.inventory)")
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
        if self.servers is not None and self.inventory is not None:
            raise ValueError("inventory: a fluid pool ('servers') cannot hold stock (give 'concurrency')")
        return self


class Auth(Service):
    """The login service: a `Service` whose sessions expire."""

    session_ttl_s: float = Field(default=86_400, gt=0, le=_BIG, description="a session's lifetime after login, "
                                                                            "seconds; then the user logs in again")
    register_latency: Distribution | None = Field(
        default=None, description="seconds of auth work for a new user's first login (registration: account "
                                  "creation, verification code); none = 'latency'")


class GpuSpec(Frozen):
    """One GPU: peak dense TFLOP/s for the dtype, HBM bandwidth, memory, and achievable fractions."""

    tflops: float = Field(gt=0, le=1e6, description="peak dense TFLOP/s of one GPU for the model's dtype "
                                                    "(H100 SXM bf16: 989)")
    hbm_gb_s: float = Field(gt=0, le=1e6, description="peak memory bandwidth of one GPU, GB/s (H100 SXM: 3,350)")
    memory_gb: float = Field(gt=0, le=1e5, description="memory of one GPU, GB (90% of it holds weights and "
                                                       "KV cache)")
    mfu: float = Field(default=0.5, gt=0, le=1, description="fraction of peak FLOP/s reached in prefill (model "
                                                            "FLOPs utilisation)")
    mbu: float = Field(default=0.7, gt=0, le=1, description="fraction of peak bandwidth reached in decode")
    count: int = Field(default=1, ge=1, le=1024, description="GPUs per replica (tensor parallel)")


class ModelSpec(Frozen):
    """A decoder-only transformer. For MoE models, `active_params_b` < `total_params_b`."""

    total_params_b: float = Field(gt=0, le=1e5, description="parameters held in GPU memory, billions")
    active_params_b: float | None = Field(default=None, gt=0, le=1e5, description="parameters used per token, "
                                                                                  "billions (MoE); none = total")
    layers: int = Field(ge=1, le=10_000, description="transformer layers")
    hidden: int = Field(ge=1, le=10**6, description="hidden size (model dimension)")
    kv_heads: int = Field(ge=1, le=10_000, description="key/value heads (fewer than query heads with GQA)")
    head_dim: int = Field(ge=1, le=10_000, description="dimension of one attention head")
    dtype_bytes: float = Field(default=2, gt=0, le=8, description="bytes per weight and per KV value (bf16: 2, "
                                                                  "fp8: 1)")

    @property
    def active_params(self) -> float:
        return 1e9 * (self.active_params_b or self.total_params_b)

    @property
    def kv_bytes_per_token(self) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * self.dtype_bytes


class RooflineCost(Frozen):
    """Iteration time from GPU and model specs: prefill is compute-bound, decode memory-bound."""

    type: Literal["roofline"] = Field(default="roofline", description="cost model from GPU and model specs")
    gpu: GpuSpec = Field(description="the GPU a replica runs on")
    model: ModelSpec = Field(description="the model a replica serves")
    overhead_s: float = Field(default=0.002, ge=0, le=10, description="fixed time per batch step, seconds "
                                                                      "(scheduling, kernel launches)")


class FittedCost(Frozen):
    """Iteration time fitted to measurements:
    t = base_s + per_prefill_token_s * prefill + per_decode_seq_s * decodes + per_context_token_s * context."""

    type: Literal["fitted"] = Field(default="fitted", description="cost model fitted to measured batch steps")
    base_s: float = Field(ge=0, le=100, description="fixed time of one batch step, seconds")
    per_prefill_token_s: float = Field(ge=0, le=100, description="seconds per prompt token prefilled in the step")
    per_decode_seq_s: float = Field(ge=0, le=100, description="seconds per sequence decoding one token in the step")
    per_context_token_s: float = Field(default=0.0, ge=0, le=100, description="seconds per cached (KV) token the "
                                                                              "step reads")


CostModel = Annotated[RooflineCost | FittedCost, Field(discriminator="type")]


class Autoscaling(Frozen):
    """Every `interval_s`: wanted replicas = ceil(sequences in the fleet / (max_num_seqs x
    target_utilisation)), within bounds; new replicas serve after `cold_start_s`."""

    min_replicas: int = Field(ge=0, le=100_000, description="fewest replicas kept")
    max_replicas: int = Field(ge=1, le=100_000, description="most replicas allowed (the GPU budget)")
    target_utilisation: float = Field(default=0.7, gt=0, le=1, description="wanted sequences per replica as a "
                                                                           "fraction of max_num_seqs")
    interval_s: float = Field(default=30, ge=1, le=_BIG, description="seconds between scaling decisions "
                                                                     "(Kubernetes HPA: 15)")
    cold_start_s: float = Field(default=120, ge=0, le=_BIG, description="seconds from the decision until a new "
                                                                        "replica serves (boot, weights, warm-up)")

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"'max_replicas' must be >= 'min_replicas' (got {self.max_replicas} < {self.min_replicas})")
        return self


class LocalModel(Frozen):
    """The reference stack's own PyTorch model (random weights)."""

    layers: int = Field(default=2, ge=1, le=64, description="transformer layers")
    hidden: int = Field(default=128, ge=8, le=8192, description="hidden size")
    heads: int = Field(default=4, ge=1, le=128, description="attention heads (hidden must divide by it)")
    vocab: int = Field(default=512, ge=16, le=200_000, description="vocabulary size, tokens")
    max_context: int = Field(default=2048, ge=16, le=1_000_000, description="longest sequence, prompt and output, "
                                                                            "tokens")


class LocalBackend(Frozen):
    """The reference stack serves its own small PyTorch model."""

    type: Literal["local"] = Field(default="local", description="the reference stack's own model")
    model: LocalModel = Field(default_factory=LocalModel, description="the model's size")


class OpenAIBackend(Frozen):
    """The reference stack forwards LLM calls to an OpenAI-compatible server."""

    type: Literal["openai"] = Field(default="openai", description="forward to an OpenAI-compatible server")
    base_url: str = Field(description="the server's base URL, e.g. http://127.0.0.1:8001/v1")
    model: str = Field(default="default", description="model name sent in each request")


Backend = Annotated[LocalBackend | OpenAIBackend, Field(discriminator="type")]


class LLMFleet(Frozen):
    """Replicas serving the LLM with continuous batching (one batch step at a time per replica)."""

    replicas: int = Field(default=1, ge=1, le=1_000_000, description="model replicas at t=0 (each `gpu.count` GPUs)")
    max_num_seqs: int = Field(default=64, ge=1, le=100_000, description="sequences in one replica's batch at most "
                                                                        "(vLLM max_num_seqs)")
    max_batched_tokens: int = Field(default=8192, ge=1, le=10**8, description="tokens one batch step processes "
                                                                              "at most (vLLM max_num_batched_tokens)")
    chunked_prefill: bool = Field(default=True, description="split long prompts across steps so decodes keep "
                                                            "running")
    kv_cache_tokens: int | None = Field(default=None, ge=1, le=10**10, description="KV-cache capacity per replica, "
                                                                                   "tokens; default: from GPU memory "
                                                                                   "(roofline) or unbounded")
    routing: Literal["round_robin", "random", "jsq", "power_of_two", "least_kv"] = Field(
        default="jsq", description="how a call picks a replica: round_robin, random, jsq (fewest sequences), "
                                   "power_of_two (the less loaded of two at random), least_kv (most free KV cache)")
    queue_limit: int | None = Field(default=None, ge=0, le=10**9, description="waiting sequences per replica; one "
                                                                              "more is shed; none = unbounded")
    cost_model: CostModel = Field(
        default_factory=lambda: FittedCost(base_s=0.005, per_prefill_token_s=2e-5, per_decode_seq_s=2e-4),
        description="how long a batch step takes: roofline (from specs) or fitted (from measurements)",
    )
    autoscaling: Autoscaling | None = Field(default=None, description="add and remove replicas with load; none = "
                                                                      "fixed")
    backend: Backend = Field(default_factory=LocalBackend, description="what the reference stack runs the LLM "
                                                                       "on (the simulator ignores it)")

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


class Host(Frozen):
    """The CPU the stack's own work runs on, when its parts share it: the reference stack on a CPU
    runs its LLM replicas' batch steps, its HTTP server's event loop (parsing, JSON, streaming
    each token) and its tool wrappers in one process on the cores it is pinned to, and they take
    turns there (the OS and the interpreter's lock interleave them finely). So n busy pieces of
    work each progress at min(1, cores / n) CPU-seconds per second: processor sharing. The
    figures are CPU time, measured apart from the load they are used to predict
    (`loadtest.calibrate_host`). Only the SimPy engine models it."""

    cores: float = Field(default=1.0, gt=0, le=1024, description="cores the stack's process runs on (pinned), "
                                                                 "shared by processor sharing")
    llm_steps: bool = Field(default=True, description="the LLM replicas' batch steps run on these cores (a model "
                                                      "on the CPU); false: on their own accelerators")
    request_cpu_s: float = Field(default=0.0, ge=0, le=10, description="CPU seconds of one HTTP request (parse, "
                                                                       "JSON, session check, gateway): every "
                                                                       "attempt and every login")
    llm_call_cpu_s: float = Field(default=0.0, ge=0, le=10, description="CPU seconds of one LLM call outside the "
                                                                        "batch steps (tokenising the prompt, "
                                                                        "starting and ending the generation)")
    token_cpu_s: float = Field(default=0.0, ge=0, le=10, description="CPU seconds per output token outside the "
                                                                     "batch step (handing it to the request, "
                                                                     "streaming it)")
    tool_call_cpu_s: float = Field(default=0.0, ge=0, le=10, description="CPU seconds of the stack's own work "
                                                                         "per tool call (wrapper, order ledger), on "
                                                                         "top of the tool's latency")


class Services(Frozen):
    """The stack a command passes through: gateway, then auth (login), then its stages."""

    gateway: Gateway | None = Field(default=None, description="admission control in front of the agent; none = "
                                                              "every command goes straight in")
    auth: Auth | None = Field(default=None, description="the login service; none = no login")
    llm: LLMFleet | None = Field(default=None, description="the LLM fleet that serves `llm` stages")
    tools: dict[str, Service] = Field(default_factory=dict, description="downstream services by name (catalog, "
                                                                        "order, payment, ...)")
    host: Host | None = Field(default=None, description="the CPU the stack's own work shares (processor "
                                                        "sharing); none = every part has its own hardware")

    def names(self) -> list[str]:
        """Every service a fault or stage can name."""
        fixed = [n for n in ("gateway", "auth", "llm") if getattr(self, n) is not None]
        return fixed + list(self.tools)
