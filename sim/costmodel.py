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
"""

from __future__ import annotations

import numpy as np

from sim.scenario.services import FittedCost, RooflineCost


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
            return (s.base_s + s.per_prefill_token_s * prefill_tokens + s.per_decode_seq_s * decode_seqs
                    + s.per_context_token_s * kv_tokens)
        tokens = prefill_tokens + decode_seqs
        flops = 2.0 * self._active * tokens + self._attn * attended_tokens
        seqs = max(1, decode_seqs + (1 if prefill_tokens else 0))
        weights = self._wbytes * min(self._total, self._active * seqs)
        mem = weights + self._kv_bytes * kv_tokens
        return self._overhead + max(flops / self._flops_per_s, mem / self._bytes_per_s)

    def step_s_array(self, prefill_tokens: np.ndarray, decode_seqs: np.ndarray, kv_tokens: np.ndarray,
                     attended_tokens: np.ndarray) -> np.ndarray:
        """`step_s` for arrays of steps (the fleet engine's replicas, mean batch per step; counts
        may be fractional): the same formula, element by element."""
        s = self.spec
        p, d = np.asarray(prefill_tokens, dtype=float), np.asarray(decode_seqs, dtype=float)
        if isinstance(s, FittedCost):
            return (s.base_s + s.per_prefill_token_s * p + s.per_decode_seq_s * d
                    + s.per_context_token_s * np.asarray(kv_tokens, dtype=float))
        flops = 2.0 * self._active * (p + d) + self._attn * np.asarray(attended_tokens, dtype=float)
        seqs = np.maximum(1.0, d + (p > 0))
        weights = self._wbytes * np.minimum(self._total, self._active * seqs)
        mem = weights + self._kv_bytes * np.asarray(kv_tokens, dtype=float)
        return self._overhead + np.maximum(flops / self._flops_per_s, mem / self._bytes_per_s)
