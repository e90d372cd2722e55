"""How long one continuous-batching step takes on one LLM replica.

A step runs `prefill_tokens` prompt tokens (possibly chunks of several prompts) and one
decode token for each of `decode_seqs` sequences; it reads `kv_tokens` cached tokens, and its
tokens attend to `attended_tokens` context tokens in all. Two models, one contract (`step_s`):

- roofline: time = overhead + max(FLOPs / achievable FLOP/s, bytes / achievable bandwidth).
  FLOPs = 2 x active params x tokens + 4 x layers x hidden x attended tokens (QK and AV);
  bytes = weights read once per step (for MoE, the experts a batch touches: active params per
  sequence, up to all of them) + the KV cache read.
- fitted: time = base + a x prefill tokens + b x decode sequences + c x context tokens,
  coefficients fitted to measurements (e.g. of the reference stack).

`decode_steps_s` gives the times of a run of decode-only steps at once (the context grows by
one token per sequence per step); it evaluates the same expressions in the same order (on an
array for long runs), so each element equals `step_s` bit for bit: the engine's event times
depend on it.
"""

from __future__ import annotations

import numpy as np

from sim.scenario.services import FittedCost, RooflineCost

_LOOP_STEPS = 16  # shorter runs of steps are computed in Python: cheaper than numpy's call overhead


class StepCost:
    """`step_s(prefill_tokens, decode_seqs, kv_tokens, attended_tokens)` in seconds."""

    def __init__(self, spec: RooflineCost | FittedCost) -> None:
        self.spec = spec
        if isinstance(spec, RooflineCost):
            g, m = spec.gpu, spec.model
            self._flops_per_s = g.tflops * 1e12 * g.mfu * g.count
            self._bytes_per_s = g.hbm_gb_s * 1e9 * g.mbu * g.count
            self._active = m.active_params
            self._total = m.total_params_b * 1e9
            self._attn = 4.0 * m.layers * m.hidden
            self._wbytes = m.dtype_bytes
            self._kv_bytes = m.kv_bytes_per_token
            self._overhead = spec.overhead_s

    def step_s(self, prefill_tokens: int, decode_seqs: int, kv_tokens: float, attended_tokens: float) -> float:
        s = self.spec
        if isinstance(s, FittedCost):
            return _fitted(s, prefill_tokens, decode_seqs, kv_tokens)
        flops_s, mem_s = self._roofline(prefill_tokens, decode_seqs, kv_tokens, attended_tokens)
        return self._overhead + max(flops_s, mem_s)

    def decode_steps_s(self, decode_seqs: int, context_tokens: int, steps: int, scale: float = 1.0) -> list[float]:
        """The times of `steps` decode-only steps of `decode_seqs` sequences holding
        `context_tokens` at the first step, each times `scale`: element i is
        `scale * step_s(0, decode_seqs, ctx_i, ctx_i)`, ctx_i = context_tokens + i x decode_seqs."""
        s, n = self.spec, decode_seqs
        if isinstance(s, FittedCost):
            fixed = _fitted(s, 0, n, 0.0)  # the same sum as step_s, less the context term
            per_ctx = s.per_context_token_s
            if per_ctx == 0.0:  # the context term adds 0.0: every step takes the same time
                return [scale * fixed] * steps
            if steps <= _LOOP_STEPS:
                return [scale * (fixed + per_ctx * (context_tokens + i * n)) for i in range(steps)]
            return (scale * (fixed + per_ctx * self._contexts(n, context_tokens, steps))).tolist()  # type: ignore[no-any-return]
        if steps <= _LOOP_STEPS:  # `_roofline` and `step_s` inlined, term by term
            flops0 = 2.0 * self._active * n
            weights = self._wbytes * min(self._total, self._active * max(1, n))
            attn, kv_bytes, f_s, b_s, over = self._attn, self._kv_bytes, self._flops_per_s, self._bytes_per_s, self._overhead
            out = []
            for c in range(context_tokens, context_tokens + steps * n, n):
                compute, memory = (flops0 + attn * c) / f_s, (weights + kv_bytes * c) / b_s
                out.append(scale * (over + (compute if compute >= memory else memory)))  # max(): the first if tied
            return out
        ctx = self._contexts(n, context_tokens, steps)
        flops_s, mem_s = self._roofline(0, n, ctx, ctx)
        return (scale * (self._overhead + np.maximum(flops_s, mem_s))).tolist()  # type: ignore[no-any-return]

    @staticmethod
    def _contexts(decode_seqs: int, context_tokens: int, steps: int) -> np.ndarray:
        return np.arange(steps, dtype=np.int64) * decode_seqs + context_tokens

    def _roofline(self, prefill_tokens, decode_seqs, kv_tokens, attended_tokens):  # type: ignore[no-untyped-def]
        """(compute time, memory time) of a step; the token counts may be arrays."""
        tokens = prefill_tokens + decode_seqs
        flops = 2.0 * self._active * tokens + self._attn * attended_tokens
        seqs = max(1, decode_seqs + (1 if prefill_tokens else 0))
        weights = self._wbytes * min(self._total, self._active * seqs)
        mem = weights + self._kv_bytes * kv_tokens
        return flops / self._flops_per_s, mem / self._bytes_per_s

    def step_s_array(self, prefill_tokens: np.ndarray, decode_seqs: np.ndarray, kv_tokens: np.ndarray,
                     attended_tokens: np.ndarray) -> np.ndarray:
        """`step_s` for arrays of steps (the fleet engine's replicas, mean batch per step; counts
        may be fractional): the same formula, element by element."""
        s = self.spec
        p, d = np.asarray(prefill_tokens, dtype=float), np.asarray(decode_seqs, dtype=float)
        if isinstance(s, FittedCost):
            return _fitted(s, p, d, np.asarray(kv_tokens, dtype=float))  # type: ignore[no-any-return]
        flops = 2.0 * self._active * (p + d) + self._attn * np.asarray(attended_tokens, dtype=float)
        seqs = np.maximum(1.0, d + (p > 0))
        weights = self._wbytes * np.minimum(self._total, self._active * seqs)
        mem = weights + self._kv_bytes * np.asarray(kv_tokens, dtype=float)
        return self._overhead + np.maximum(flops / self._flops_per_s, mem / self._bytes_per_s)


def _fitted(s: FittedCost, prefill_tokens, decode_seqs, kv_tokens):  # type: ignore[no-untyped-def]
    """The fitted step time; `kv_tokens` may be an array."""
    return (s.base_s + s.per_prefill_token_s * prefill_tokens + s.per_decode_seq_s * decode_seqs
            + s.per_context_token_s * kv_tokens)
