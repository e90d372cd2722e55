"""Building a `StackConfig` from a scenario (`from_scenario`) or from a plain dict (`from_dict`,
used by `python -m loadtest.stack --config-json`).

Scaling: `scale` multiplies capacities that grow with a fleet — LLM replicas, gateway
concurrency and queue, rate limits, service concurrency — each rounded up to at least 1.
Per-replica engine limits (max_num_seqs, KV tokens) and latencies are not scaled: one replica
of the stack behaves like one replica of the scenario.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter

from loadtest.stack.config import (
    AuthConfig,
    BreakerConfig,
    GatewayConfig,
    LLMConfig,
    LLMStage,
    ModelConfig,
    ServiceConfig,
    StackConfig,
    ToolStage,
    scaled,
)
from sim.dists import Distribution

_MAX_PHYSICAL_KV = 1 << 20  # tokens per replica: an unbounded scenario KV still needs real memory
_dist = TypeAdapter(Distribution)


def _service(svc: Any, base: ServiceConfig, scale: float) -> dict[str, Any]:
    cb = svc.circuit_breaker
    return {"concurrency": scaled(svc.concurrency, scale), "latency": svc.latency, "error_rate": svc.error_rate,
            "breaker": BreakerConfig(cb.failure_threshold, cb.open_s) if cb else base.breaker}


def _gateway(sc: Any, scale: float) -> GatewayConfig:
    g = sc.services.gateway
    classes = sc.workload.classes
    agent = [c.priority for c in classes.values() if c.places_order] or [0]
    chat = [c.priority for c in classes.values() if not c.places_order] or [min(agent) + 1]
    prio = {"agent": min(agent), "chat": min(chat)} | {n: c.priority for n, c in classes.items() if c.places_order}
    if g is None:
        return GatewayConfig(priority=prio)
    rl = g.rate_limit
    return GatewayConfig(
        global_per_s=scaled(rl.global_per_s, scale) if rl else None,
        burst=scaled(rl.burst, scale) if rl and rl.burst else None,
        per_user_per_s=rl.per_user_per_s if rl else None,  # a user is a user at any scale
        per_user_burst=rl.per_user_burst if rl else 5.0,
        concurrency=min(scaled(g.concurrency, scale), 1_000_000),
        queue_limit=scaled(g.queue_limit, scale) if g.queue_limit is not None else 1_000_000,
        discipline=g.discipline, deadline_drop=g.deadline_drop,
        priority=prio if g.priority else dict.fromkeys(prio, 0),
    )


def _llm(sc: Any, base: StackConfig, scale: float) -> tuple[LLMConfig, ModelConfig]:
    f = sc.services.llm
    if f is None:
        return base.llm, base.model
    b = f.backend
    model = base.model
    if b.type == "local":
        m = b.model
        model = ModelConfig(name=base.model.name, layers=m.layers, hidden=m.hidden, heads=m.heads, vocab=m.vocab,
                            max_context=m.max_context)
    kv = min(f.kv_tokens, _MAX_PHYSICAL_KV, f.max_num_seqs * model.max_context)
    llm = dataclasses.replace(
        base.llm, backend=b.type, replicas=scaled(f.replicas, scale), max_num_seqs=f.max_num_seqs,
        max_batched_tokens=f.max_batched_tokens, chunked_prefill=f.chunked_prefill,
        kv_cache_tokens=max(kv, base.llm.block_tokens), routing=f.routing, queue_limit=f.queue_limit,
        base_url=getattr(b, "base_url", ""), remote_model=getattr(b, "model", "default")
        if b.type == "openai" else base.llm.remote_model)
    return llm, model


def _stages_of(cls: Any) -> tuple[LLMStage | ToolStage, ...]:
    return tuple(LLMStage(st.llm.prompt_tokens, st.llm.output_tokens) if st.llm is not None
                 else ToolStage(st.tool.service, st.tool.result_tokens) for st in cls.stages)


def _agent_classes(sc: Any) -> dict[str, tuple[LLMStage | ToolStage, ...]]:
    """The stages of every order-placing class, the most likely first."""
    ordering = sorted(((n, c) for n, c in sc.workload.classes.items() if c.places_order),
                      key=lambda nc: -nc[1].probability)
    return {n: _stages_of(c) for n, c in ordering}


def config_from_scenario(base: StackConfig, sc: Any, scale: float = 1.0) -> StackConfig:
    """`base` with every field the scenario sets replaced (see the module docstring)."""
    if not scale > 0:
        raise ValueError(f"'scale' must be > 0 (got {scale})")
    s = sc.services
    llm, model = _llm(sc, base, scale)
    auth = base.auth
    if s.auth is not None:
        auth = dataclasses.replace(base.auth, **_service(s.auth, base.auth, scale), session_ttl_s=s.auth.session_ttl_s)
    tools = dict(base.tools)  # catalog, order and payment always exist: the agent needs them
    for name, t in s.tools.items():
        tools[name] = dataclasses.replace(tools.get(name, ServiceConfig()), **_service(t, ServiceConfig(), scale))
    agents = _agent_classes(sc)
    return dataclasses.replace(base, model=model, llm=llm, gateway=_gateway(sc, scale), auth=auth, tools=tools,
                               agent_stages=next(iter(agents.values()), base.agent_stages), agent_classes=agents,
                               seed=sc.run.seed)


def _section(cls: Any, cur: Any, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)} in {cls.__name__} (known: {sorted(names)})")
    vals = {k: (_dist.validate_python(v) if k == "latency" else
                BreakerConfig(**v) if k == "breaker" and isinstance(v, dict) else v) for k, v in data.items()}
    return dataclasses.replace(cur, **vals)


def config_from_dict(base: StackConfig, data: dict[str, Any]) -> StackConfig:
    """`base` with the sections in `data` changed, e.g. {"llm": {"replicas": 1},
    "tools": {"payment": {"latency": {"type": "constant", "value": 0.01}}}, "db_path": "x.db"}."""
    out: dict[str, Any] = {}
    sections = {"model": ModelConfig, "llm": LLMConfig, "gateway": GatewayConfig, "auth": AuthConfig}
    for key, val in data.items():
        if key in sections:
            out[key] = _section(sections[key], getattr(base, key), val)
        elif key == "tools":
            tools = dict(base.tools)
            for name, t in val.items():
                tools[name] = _section(ServiceConfig, tools.get(name, ServiceConfig()), t)
            out[key] = tools
        elif key in {f.name for f in dataclasses.fields(StackConfig)} and key not in ("agent_stages", "agent_classes"):
            out[key] = val
        else:
            raise ValueError(f"unknown key {key!r} in the stack config")
    return dataclasses.replace(base, **out)
