"""The workload: command classes, each a list of stages (LLM calls and tool calls)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sim.dists import Distribution
from sim.scenario.launch import Funnel
from sim.scenario.services import Frozen

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class LLMStage(Frozen):
    """An LLM call. Its prompt is the command's context so far plus `prompt_tokens` new tokens
    plus `image_tokens` (images are prefilled like text: the cost model charges them as prefill)."""

    prompt_tokens: Distribution = Field(
        description="new prompt tokens this call adds (system prompt, user text, tool results not "
                    "counted elsewhere), tokens per call")
    output_tokens: Distribution = Field(description="tokens the model generates in this call, tokens per call")
    image_tokens: Distribution | None = Field(
        default=None, description="tokens of the images attached to this call (a vision encoder's output, prefilled "
                                  "with the prompt and kept in the context), tokens per call; none = text only")


class ToolStage(Frozen):
    """A call to one of `services.tools` (catalog, order, payment, ...)."""

    service: str = Field(description="name of the tool service called: a key of services.tools")
    result_tokens: Distribution | None = Field(
        default=None, description="tokens the tool's result adds to the context of later LLM calls, tokens per "
                                  "call; none = the result adds nothing")
    inventory: Literal["hold", "confirm"] | None = Field(
        default=None, description="on an inventory service: hold units for the command's order, or confirm "
                                  "(sell) the order's holds on that service; none = a plain call")
    quantity: Distribution | None = Field(default=None, description="units one hold takes (hold only), units per "
                                                                    "hold; none = 1")


def _tool_or_name(schema: dict[str, Any]) -> None:
    """JSON Schema of `tool`: the mapping, or its shorthand `tool: SERVICE`."""
    schema["anyOf"].insert(1, {"type": "string", "description": "shorthand for {service: NAME}"})


class Stage(Frozen):
    """One step of a command: exactly one of an LLM call or a tool call."""

    llm: LLMStage | None = Field(default=None, description="an LLM call on services.llm")
    tool: ToolStage | None = Field(
        default=None, json_schema_extra=_tool_or_name,
        description="a tool call: a mapping, or just the service name (`tool: payment`)")

    @model_validator(mode="before")
    @classmethod
    def _tool_shorthand(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("tool"), str):
            return {**data, "tool": {"service": data["tool"]}}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Stage:
        if (self.llm is None) == (self.tool is None):
            raise ValueError("a stage is exactly one of 'llm' or 'tool'")
        return self


class CommandClass(Frozen):
    """A kind of command a user issues (e.g. `chat`, `help_me_buy`) and what it costs the stack."""

    probability: float = Field(ge=0, le=1, description="share of users' commands that are of this class (all "
                                                        "classes sum to 1); 0 = only proactive tasks start it")
    priority: int = Field(default=1, ge=0, le=100, description="lower is more important: served first by a "
                                                               "gateway with `priority: true`")
    carry_context: bool = Field(default=True, description="each LLM call sees the earlier calls' tokens")
    places_order: bool = Field(default=False, description="a success counts as one order placed (with a 'funnel': "
                               "only when the funnel's outcome is an order)")
    probability_with_card: float | None = Field(
        default=None, ge=0, le=1, description="share of this class among the commands of a user holding a free-order "
                                              "card (population.launch); classes without it share the rest in "
                                              "proportion to 'probability'")
    funnel: Funnel | None = Field(default=None, description="how a command of this class ends without an order")
    stages: tuple[Stage, ...] = Field(min_length=1, description="the calls a command makes, in order")

    @model_validator(mode="after")
    def _funnel_tools(self) -> CommandClass:
        if self.funnel is None:
            return self
        if not self.places_order:
            raise ValueError("funnel: needs 'places_order: true'")
        tools = [st.tool.service for st in self.stages if st.tool is not None]
        if self.funnel.order_tool not in tools:
            raise ValueError(f"funnel.order_tool: no stage calls {self.funnel.order_tool!r} (tool stages: {tools})")
        pay = self.funnel.payment_tool
        if pay in tools and tools.index(pay) < tools.index(self.funnel.order_tool):
            raise ValueError(f"funnel.payment_tool: {pay!r} must come after the order tool in the stages")
        return self


class Workload(Frozen):
    """The command mix."""

    classes: dict[str, CommandClass] = Field(
        min_length=1, description="command classes by name (lower_snake_case); probabilities sum to 1")

    @field_validator("classes")
    @classmethod
    def _mix(cls, v: dict[str, CommandClass]) -> dict[str, CommandClass]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"class name must be lower_snake_case (got {name[:40]!r})")
        total = sum(c.probability for c in v.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"class probabilities must sum to 1 (got {total:g})")
        given = sum(c.probability_with_card or 0.0 for c in v.values())
        rest = [n for n, c in v.items() if c.probability_with_card is None]
        if given > 1 + 1e-9 or (not rest and abs(given - 1) > 1e-6):
            raise ValueError(f"probability_with_card: must sum to <= 1, and to 1 when every class gives one "
                             f"(got {given:g})")
        return v
