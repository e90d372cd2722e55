"""Service times as kernels over future time steps, and the token lengths of LLM calls.

A request that enters a service at a uniform moment of step n and needs S seconds finishes in
step n + k with probability p_k = P(k <= U + S/dt < k + 1), U ~ U(0, 1): the kernel of S on the
step grid. Kernels come from a fixed-seed sample of the scenario's own distribution (200,000
draws), so they are the same in every run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from sim.dists import Distribution
from sim.rules.calls import ttft_from_attempt, with_image
from sim.scenario import Scenario

_N = 200_000
MAX_BINS = 4096


def _rng(tag: str) -> np.random.Generator:
    import zlib

    return np.random.default_rng(zlib.crc32(tag.encode()))


def delay_kernel(samples_s: np.ndarray, dt: float, scale: float = 1.0) -> np.ndarray:
    """The kernel (p_0, p_1, ...) of delays `samples_s` x `scale` on steps of `dt` seconds."""
    u = _rng("delay-kernel").random(len(samples_s))
    k = np.floor(u + samples_s * scale / dt).astype(np.int64)
    k = np.minimum(k, MAX_BINS - 1)
    p = np.bincount(k, minlength=int(k.max()) + 1).astype(np.float64)
    return p / p.sum()


@lru_cache(maxsize=256)
def latency_samples(dist_json: str) -> np.ndarray:
    """A fixed sample of a latency distribution (seconds), keyed by its JSON."""
    from pydantic import TypeAdapter

    dist = TypeAdapter(Distribution).validate_json(dist_json)
    return np.asarray(dist.sample_n(_rng(dist_json), _N), dtype=np.float64)


def dist_key(dist: object) -> str:
    from pydantic import TypeAdapter

    return TypeAdapter(Distribution).dump_json(dist).decode()  # type: ignore[arg-type]


@dataclass(frozen=True)
class LLMStage:
    """What one LLM stage of a class sends: prompt and output token samples (context carried)."""

    prompt_tokens: np.ndarray  # a sample of this call's prompt length (context included)
    decode_steps: np.ndarray  # output tokens - 1 (the first token comes with the prefill)
    ttft_from_attempt: bool = False  # a chat class: TTFT from the attempt's start (`sim.rules.calls`)

    @cached_property
    def mean_prompt(self) -> float:
        return float(self.prompt_tokens.mean())

    @cached_property
    def mean_output(self) -> float:
        return float(self.decode_steps.mean() + 1)


def class_plans(sc: Scenario, n: int = 20_000) -> dict[str, list[tuple[str, object]]]:
    """Per class, per stage: ("llm", LLMStage) or ("tool", service name), with prompt lengths
    that carry the context of the earlier stages exactly as the SimPy engine builds them."""
    out: dict[str, list[tuple[str, object]]] = {}
    for cname, cls in sc.workload.classes.items():
        rng = _rng(f"plan:{cname}")
        context = np.zeros(n)
        plan: list[tuple[str, object]] = []
        for st in cls.stages:
            if st.tool is not None:
                if st.tool.result_tokens is not None:
                    context = context + np.floor(st.tool.result_tokens.sample_n(rng, n))
                plan.append(("tool", st.tool.service))
                continue
            assert st.llm is not None
            new = np.maximum(1, np.round(st.llm.prompt_tokens.sample_n(rng, n)))
            out_tok = np.maximum(1, np.round(st.llm.output_tokens.sample_n(rng, n)))
            if st.llm.image_tokens is not None:  # drawn after the text: the text samples stay as they were
                new = with_image(new, st.llm.image_tokens.sample_n(rng, n))
            prompt = context + new if cls.carry_context else new
            plan.append(("llm", LLMStage(prompt, out_tok - 1, ttft_from_attempt(cls))))
            context = prompt + out_tok
        out[cname] = plan
    return out


def token_kernel(decode_steps: np.ndarray, bin_tokens: int) -> np.ndarray:
    """Kernel of finishing bins (width `bin_tokens` engine steps) for a sequence that enters at a
    uniform point of a bin and then needs `decode_steps` steps."""
    u = _rng("token-kernel").random(len(decode_steps))
    j = np.floor(u + decode_steps / bin_tokens).astype(np.int64)
    j = np.minimum(j, MAX_BINS - 1)
    p = np.bincount(j, minlength=int(j.max()) + 1).astype(np.float64)
    return p / p.sum()


def quantiles(sample: np.ndarray, q: int) -> np.ndarray:
    """q stratified representatives of a sample (the midpoints of q equal-probability strata)."""
    return np.quantile(sample, (np.arange(q) + 0.5) / q)


def choose_dt(sc: Scenario) -> float:
    """The time step: fine enough for the scenario's shortest service and the LLM's step times,
    coarse enough for long runs; it divides `run.interval_s`."""
    scales = []
    for svc in ([sc.services.auth] if sc.services.auth else []) + list(sc.services.tools.values()):
        scales.append(svc.latency.mean)  # type: ignore[union-attr]
    want = 0.25
    if scales and sc.services.llm is None:  # tool-only systems (the queueing cases): resolve the service
        want = min(want, max(0.005, min(scales) / 8))
    if sc.clients.timeout_s:
        want = min(want, sc.clients.timeout_s / 40)
    k = max(1, math.ceil(sc.run.interval_s / want - 1e-9))
    return sc.run.interval_s / k
