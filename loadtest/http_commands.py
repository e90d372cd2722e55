"""What a command is as the load test runs it over HTTP: its class (`Spec`, with the names of the
series it counts), a user's session, one command with its Idempotency-Key and funnel plan, and
the headers every request of a scenario carries. `loadtest.commands.HttpClient` runs them."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loadtest.funnel import Shopper
from sim.dists import sampler
from sim.funnel import Plan as BuyPlan
from sim.results import names as N
from sim.rules.attempts import Command, SessionHealth
from sim.rules.calls import kind_of
from sim.rules.deadlines import Deadlines
from sim.scenario import CommandClass, Scenario

AGENT_TEXT = "help me buy a milk tea"
CLASS_HEADER = "X-Surge-Class"  # the command class of a chat request (its priority at the stack's gateway)


@dataclass
class Spec:
    """A command class as the load test runs it, with the names of what it counts (made once:
    the load test counts them on every request)."""

    name: str
    cls: CommandClass
    kind: str  # "chat" or "agent"
    good_within_s: float  # the class's e2e SLO (goodput), inf when none
    keys: SpecKeys = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.keys = SpecKeys(self.name)


class SpecKeys:
    """The series and histogram names of one class (`sim.results.names`)."""

    __slots__ = ("arrived", "attempts", "retries", "admitted", "completed", "good", "e2e", "e2e_send", "ttft",
                 "itl", "tpot", "tokens_out")

    def __init__(self, cls: str) -> None:
        self.arrived, self.attempts, self.retries = (N.of_class(m, cls) for m in ("arrived", "attempts", "retries"))
        self.admitted, self.completed, self.good = (N.of_class(m, cls) for m in ("admitted", "completed", "good"))
        self.e2e, self.e2e_send, self.ttft, self.itl, self.tpot = (
            N.hist(m, cls) for m in ("e2e", "e2e_send", "ttft", "itl", "tpot"))
        self.tokens_out = N.tokens_out(cls)


@dataclass
class HttpSession:
    """A user's session over HTTP: the stack's session token (None: logged out), and the user's
    funnel state (`loadtest.funnel.Shopper`, made when a funnel needs it)."""

    user: str
    health: SessionHealth
    token: str | None = None
    shopper: Shopper | None = None


class HttpCommand(Command):
    """A command (`sim.rules.attempts.Command`; `t0`: its intended start, seconds since the
    run's t0) with what HTTP adds: its class as the load test runs it, its Idempotency-Key
    (kept across retries), its first send, the order it placed, whether the current attempt
    got past the gateway, its funnel plan and the outcome the stack answered."""

    __slots__ = ("spec", "_key", "first_send", "order_id", "admitted", "plan", "outcome")

    def __init__(self, spec: Spec, t0: float, prompt0: int = -1, output0: int = -1) -> None:
        super().__init__(spec.name, spec.cls, t0, prompt0, output0)
        self.spec = spec
        self._key: str | None = None
        self.first_send: float | None = None
        self.order_id: str | None = None
        self.admitted = False
        self.plan: BuyPlan | None = None
        self.outcome: str | None = None

    @property
    def key(self) -> str:
        """The Idempotency-Key, drawn when first asked for (a chat command never sends one)."""
        if self._key is None:
            self._key = uuid.uuid4().hex
        return self._key


def specs_of(sc: Scenario) -> list[Spec]:
    out = []
    for name, cls in sc.workload.classes.items():
        slo = sc.slos.get(name)
        out.append(Spec(name, cls, kind_of(cls), (slo.e2e_p99_s if slo else None) or math.inf))
    return out


def length_samplers(spec: Spec, rng: np.random.Generator) -> tuple[Any, Any, Any]:
    """Draws of (prompt, output, image or None) tokens of a chat class's LLM stage (`sim.dists.sampler`)."""
    st = spec.cls.stages[0].llm
    assert st is not None
    image = sampler(st.image_tokens, rng) if st.image_tokens is not None else None
    return sampler(st.prompt_tokens, rng), sampler(st.output_tokens, rng), image


def deadline_header(sc: Scenario) -> dict[str, str]:
    """`X-Request-Timeout` exactly when the scenario's servers act on the client's deadline
    (`sim.rules.deadlines`); otherwise servers finish work nobody waits for, as in the simulator."""
    d = Deadlines.of(sc)
    return {"X-Request-Timeout": f"{d.timeout_s:g}"} if d.sent and d.timeout_s else {}
