"""How a command class goes over HTTP, and so where the time to first token of its calls is
timed from: one rule for the load test (what it sends) and the simulator (what it records).

A class of exactly one LLM stage that places no order is a *chat* class: each attempt is one
streamed chat completion, and the client times its first token from its send (the HTTP
request, the gateway's admission queue and the engine's queue all count, as in any client-side
TTFT). Any other class is an *agent* class: each attempt is one agent command whose stages the
stack runs behind one admission, and the stack times each inner LLM call from its submission.
"""

from __future__ import annotations

from typing import Literal

from sim.scenario import CommandClass

Kind = Literal["chat", "agent"]


def kind_of(cls: CommandClass) -> Kind:
    """"chat" (one streamed chat completion per attempt) or "agent" (one agent command)."""
    one_llm = len(cls.stages) == 1 and cls.stages[0].llm is not None
    return "chat" if one_llm and not cls.places_order else "agent"


def ttft_from_attempt(cls: CommandClass) -> bool:
    """Whether the class's TTFT runs from the attempt's start (chat), else from each call's
    submission to the LLM (agent)."""
    return kind_of(cls) == "chat"
