"""Which tokens an LLM engine step counts as output (`llm_decode_tokens`; the stack's
`vllm:generation_tokens_total`): one rule for the SimPy engine, the fleet engine and the stack.

Every sampled token is an output token, the first one too: a step samples one token for each
sequence it decodes and one for each prompt whose last prefill chunk it ran (that prompt's
first token). vLLM's `generation_tokens_total` counts the same way, so a scraped stack and a
simulation agree on the series: a request of n output tokens adds n, not n - 1.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

T = TypeVar("T", int, float, np.ndarray)


def output_tokens(decode_seqs: T, prompts_done: T) -> T:
    """Output tokens a step (or a run of steps) sampled: `decode_seqs` decoded, `prompts_done`
    prompts whose prefill ended in it (each gives its first token)."""
    return decode_seqs + prompts_done
