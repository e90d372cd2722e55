"""How a command class goes over HTTP, and so where the time to first token of its calls is
timed from: one rule for the load test (what it sends) and the simulator (what it records).

A class of exactly one LLM stage that places no order is a *chat* class: each attempt is one
streamed chat completion, and the client times its first token from its send (the HTTP
request, the gateway's admission queue and the engine's queue all count, as in any client-side
TTFT). Any other class is an *agent* class: each attempt is one agent command whose stages the
stack runs behind one admission, and the stack times each inner LLM call from its submission.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

import numpy as np

from sim.scenario import CommandClass

T = TypeVar("T", int, np.ndarray)

Kind = Literal["chat", "agent"]


def kind_of(cls: CommandClass) -> Kind:
    """"chat" (one streamed chat completion per attempt) or "agent" (one agent command)."""
    one_llm = len(cls.stages) == 1 and cls.stages[0].llm is not None
    return "chat" if one_llm and not cls.places_order else "agent"


def ttft_from_attempt(cls: CommandClass) -> bool:
    """Whether the class's TTFT runs from the attempt's start (chat), else from each call's
    submission to the LLM (agent)."""
    return kind_of(cls) == "chat"


def with_image(new_tokens: T, image_tokens: float | np.ndarray | None) -> T:
    """A call's new prompt tokens with its image's vision-encoder tokens (`llm.image_tokens`):
    they are prefilled with the prompt and stay in the context like text. Works on one call
    (ints, the SimPy engine) and on a sample of calls (arrays, the fleet engine)."""
    if image_tokens is None:
        return new_tokens
    if isinstance(new_tokens, np.ndarray):
        return new_tokens + np.maximum(0, np.round(image_tokens))  # type: ignore[return-value]
    return new_tokens + max(0, round(float(image_tokens)))  # type: ignore[return-value]


def trace_lengths(prompt0: int, output0: int) -> tuple[int, int]:
    """(new prompt tokens, output tokens) of the LLM call a replayed trace row gives its lengths
    to: the first LLM call of its session's first command, of a chat class and of an agent class
    alike (later calls and commands draw theirs from the class); at least one output token."""
    return prompt0, max(1, output0)


def client_still_waiting(ttft_from_attempt_s: Any, timeout_s: float | None) -> Any:
    """Whether the client still waited when the first token came (a chat class's TTFT is recorded
    only then: an attempt whose client timed out is nobody's TTFT). Works elementwise on arrays."""
    return ttft_from_attempt_s <= (math.inf if timeout_s is None else timeout_s)
