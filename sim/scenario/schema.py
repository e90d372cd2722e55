"""The scenario: everything that configures a run, parsed once into frozen typed objects.

Units are in the names (`_s` seconds, `_per_s` rates, `_tokens` tokens). Cross-field rules
(probabilities sum to 1, stages and faults name services that exist) are checked here, so an
engine never meets an inconsistent scenario.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from sim.dists import Distribution
from sim.scenario.launch import Funnel, Launch
from sim.scenario.services import Frozen, Services

_BIG = 1e12
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Run(Frozen):
    """The simulated window and how results are binned."""

    duration_s: float = Field(default=3600, gt=0, le=1e8)
    interval_s: float = Field(default=60, gt=0, le=1e7)
    warmup_s: float = Field(default=0, ge=0, le=1e8, description="excluded from KPIs and SLO verdicts")
    start_hour: float = Field(default=0, ge=0, lt=24, description="clock time of t=0, for the diurnal profile")
    seed: int = Field(default=1, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _fits(self) -> Run:
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"'warmup_s' must be < 'duration_s' (got {self.warmup_s} >= {self.duration_s})")
        if self.duration_s / self.interval_s > 1_000_000:
            raise ValueError("more than 1,000,000 intervals: raise 'interval_s'")
        return self


class Campaign(Frozen):
    """A campaign that lifts daily active users from `launch_at_s` on (one value per day)."""

    launch_at_s: float = Field(ge=0, le=1e8)
    daily_active_users: tuple[float, ...] = Field(min_length=1, description="DAU on each day from launch")
    cards_per_user: float = Field(default=0, ge=0, le=1000, description="free-order cards held per active user")

    @field_validator("daily_active_users")
    @classmethod
    def _positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [x for x in v if not 0 < x <= 1e10]
        if bad:
            raise ValueError(f"each value must be > 0 and <= 1e10 (got {bad[0]})")
        return v


class Population(Frozen):
    """Who issues commands: DAU, when in the day, how many sessions, and how each session runs."""

    daily_active_users: float = Field(gt=0, le=1e10)
    sessions_per_user_per_day: float = Field(default=1.0, gt=0, le=1e4)
    diurnal: tuple[float, ...] | None = Field(
        default=None, description="24 relative weights, hour 0..23 (normalised to mean 1); none = flat"
    )
    campaign: Campaign | None = None
    launch: Launch | None = Field(default=None, description="the campaign's launch as users who join, invite and "
                                  "hold cards (instead of 'campaign')")
    commands_per_session: Distribution = Field(default_factory=lambda: {"type": "constant", "value": 1}, validate_default=True)  # type: ignore[assignment]
    think_time_s: Distribution = Field(default_factory=lambda: {"type": "constant", "value": 0}, validate_default=True)  # type: ignore[assignment]
    scale: float = Field(default=1.0, gt=0, le=1e6, description="fraction of the population simulated (a cell)")

    @field_validator("diurnal")
    @classmethod
    def _day(cls, v: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if v is None:
            return v
        if len(v) != 24:
            raise ValueError(f"must have 24 hourly weights (got {len(v)})")
        if any(x < 0 for x in v) or sum(v) <= 0:
            raise ValueError("weights must be >= 0 with a positive sum")
        return v

    @model_validator(mode="after")
    def _one_campaign(self) -> Population:
        if self.campaign is not None and self.launch is not None:
            raise ValueError("launch: give either 'campaign' (DAU per day) or 'launch' (the users behind it), not both")
        return self


class Trace(Frozen):
    """Replay arrivals from a CSV/JSONL file (relative to the scenario file)."""

    file: str
    time_column: str
    time_unit: Literal["s", "ms", "us", "datetime"] = "s"
    prompt_column: str | None = None
    output_column: str | None = None


class Arrivals(Frozen):
    """When sessions start. `rate_per_s` (constant base rate) or the population's rate curve."""

    process: Literal["poisson", "gamma", "weibull", "trace"] = "poisson"
    rate_per_s: float | None = Field(default=None, gt=0, le=1e9)
    cv: float = Field(default=1.0, gt=0, le=100, description="inter-arrival CV for gamma/weibull renewal")
    scale: float = Field(default=1.0, gt=0, le=1e6, description="multiplies the rate (trace: compresses time)")
    trace: Trace | None = None

    @model_validator(mode="after")
    def _trace(self) -> Arrivals:
        if (self.process == "trace") != (self.trace is not None):
            raise ValueError("'trace' must be given exactly when process is 'trace'")
        return self


class LLMStage(Frozen):
    """An LLM call. Its prompt is the command's context so far plus `prompt_tokens` new tokens."""

    prompt_tokens: Distribution
    output_tokens: Distribution


class ToolStage(Frozen):
    service: str
    result_tokens: Distribution | None = Field(default=None, description="tokens the result adds to the context")


class Stage(Frozen):
    llm: LLMStage | None = None
    tool: ToolStage | None = None

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
    probability: float = Field(gt=0, le=1)
    priority: int = Field(default=1, ge=0, le=100, description="lower is more important")
    carry_context: bool = Field(default=True, description="each LLM call sees the earlier calls' tokens")
    places_order: bool = Field(default=False, description="a success counts as one order placed (with a 'funnel': "
                               "only when the funnel's outcome is an order)")
    probability_with_card: float | None = Field(
        default=None, ge=0, le=1, description="share of this class among the commands of a user holding a free-order "
                                              "card (population.launch); classes without it share the rest in "
                                              "proportion to 'probability'")
    funnel: Funnel | None = Field(default=None, description="how a command of this class ends without an order")
    stages: tuple[Stage, ...] = Field(min_length=1)

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
    classes: dict[str, CommandClass] = Field(min_length=1)

    @field_validator("classes")
    @classmethod
    def _mix(cls, v: dict[str, CommandClass]) -> dict[str, CommandClass]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"class name must be lower_snake_case (got {name!r})")
        total = sum(c.probability for c in v.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"class probabilities must sum to 1 (got {total:g})")
        given = sum(c.probability_with_card or 0.0 for c in v.values())
        rest = [n for n, c in v.items() if c.probability_with_card is None]
        if given > 1 + 1e-9 or (not rest and abs(given - 1) > 1e-6):
            raise ValueError(f"probability_with_card: must sum to <= 1, and to 1 when every class gives one "
                             f"(got {given:g})")
        return v


class Backoff(Frozen):
    base_s: float = Field(default=0.5, ge=0, le=1e6)
    cap_s: float = Field(default=30, ge=0, le=1e6)
    multiplier: float = Field(default=2.0, ge=1, le=100)
    jitter: Literal["none", "full", "equal"] = "full"


class Clients(Frozen):
    """How clients behave: per-attempt timeout, retries, giving up, logging in again."""

    timeout_s: float | None = Field(default=None, gt=0, le=1e7)
    max_attempts: int = Field(default=1, ge=1, le=100)
    backoff: Backoff = Field(default_factory=Backoff)
    retry_on: tuple[Literal["timeout", "rejected", "shed", "error", "auth"], ...] = (
        "timeout", "rejected", "shed", "error",
    )
    retry_budget_ratio: float | None = Field(default=None, ge=0, le=100, description="retries <= ratio * first tries")
    adaptive_throttle_k: float | None = Field(default=None, ge=1, le=100, description="Google SRE client throttling")
    abandon_after_s: float | None = Field(default=None, gt=0, le=1e7, description="user gives up the command")
    cancel_on_timeout: bool = Field(default=False, description="servers learn of a timeout and stop the work")
    relogin: bool = True
    session_lost_after_timeouts: int | None = Field(
        default=None, ge=1, le=100,
        description="the app drops its session after this many timeouts in a row (e.g. a token refresh "
                    "that timed out logs the user out) and must log in again: overload becomes a login storm",
    )


FaultKind = Literal["capacity_loss", "slowdown", "error_rate", "outage", "session_invalidation"]


class Fault(Frozen):
    """At `at_s`, for `duration_s`: capacity_loss (magnitude = fraction lost), slowdown (latency
    multiplier), error_rate (probability), outage, session_invalidation (fraction of sessions).

    On the LLM fleet, capacity_loss takes down ceil(fraction x replicas) replicas (their work
    fails); replicas that autoscaling adds later start healthy, as replacements for lost machines."""

    at_s: float = Field(ge=0, le=1e8)
    duration_s: float = Field(gt=0, le=1e8)
    target: str
    kind: FaultKind
    magnitude: float = Field(default=1.0, ge=0, le=1e6)

    @model_validator(mode="after")
    def _magnitude(self) -> Fault:
        if self.kind in ("capacity_loss", "error_rate", "session_invalidation") and self.magnitude > 1:
            raise ValueError(f"magnitude of {self.kind} is a fraction in [0, 1] (got {self.magnitude})")
        if self.kind == "slowdown" and self.magnitude < 1:
            raise ValueError(f"magnitude of slowdown is a latency multiplier >= 1 (got {self.magnitude})")
        return self


class SLO(Frozen):
    ttft_p99_s: float | None = Field(default=None, gt=0, le=1e6)
    tpot_p99_s: float | None = Field(default=None, gt=0, le=1e6)
    e2e_p99_s: float | None = Field(default=None, gt=0, le=1e7)
    success_rate: float | None = Field(default=None, ge=0, le=1)


class Scenario(Frozen):
    """A whole scenario file. Nothing else configures a run."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    run: Run = Field(default_factory=Run)
    population: Population | None = None
    arrivals: Arrivals = Field(default_factory=Arrivals)
    workload: Workload
    clients: Clients = Field(default_factory=Clients)
    services: Services = Field(default_factory=Services)
    faults: tuple[Fault, ...] = ()
    slos: dict[str, SLO] = Field(default_factory=dict)
    _base_dir: str = PrivateAttr(default=".")

    @property
    def base_dir(self) -> str:
        """Folder of the scenario file: relative data paths (traces, empirical) start here."""
        return self._base_dir

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if self.arrivals.rate_per_s is None and self.population is None and self.arrivals.process != "trace":
            raise ValueError("arrivals.rate_per_s: required unless a 'population' gives the rate")
        _check_references(self)
        return self

    @property
    def base_rate_per_s(self) -> float:
        """Mean session start rate before profile and campaign, in sessions per second."""
        if self.arrivals.rate_per_s is not None:
            return self.arrivals.rate_per_s * self.arrivals.scale
        p = self.population
        assert p is not None
        return p.daily_active_users * p.sessions_per_user_per_day / 86_400 * p.scale * self.arrivals.scale


def _check_references(sc: Scenario) -> None:
    """Stages, faults and SLOs may only name things that exist (errors carry the field path)."""
    known = sc.services.names()
    for cname, cls in sc.workload.classes.items():
        for i, st in enumerate(cls.stages):
            if st.tool is not None and st.tool.service not in sc.services.tools:
                raise ValueError(
                    f"workload.classes.{cname}.stages.{i}.tool: unknown service {st.tool.service!r} "
                    f"(services.tools has {sorted(sc.services.tools)})"
                )
            if st.llm is not None and sc.services.llm is None:
                raise ValueError(f"workload.classes.{cname}.stages.{i}.llm: needs 'services.llm'")
    for i, f in enumerate(sc.faults):
        if f.target not in known:
            raise ValueError(f"faults.{i}.target: unknown service {f.target!r} (known: {known})")
        if f.kind == "slowdown" and f.target == "gateway":
            raise ValueError(f"faults.{i}.kind: the gateway has no latency to slow down (use capacity_loss, "
                             "error_rate or outage)")
        if f.kind == "session_invalidation" and f.target != "auth":
            raise ValueError(f"faults.{i}.target: session_invalidation targets 'auth' (got {f.target!r})")
        if f.at_s >= sc.run.duration_s:
            raise ValueError(f"faults.{i}.at_s: must be < run.duration_s (got {f.at_s})")
    for name in sc.slos:
        if name not in sc.workload.classes:
            raise ValueError(f"slos.{name}: unknown command class (classes: {sorted(sc.workload.classes)})")
    if sc.population and sc.population.campaign and not math.isfinite(sc.population.campaign.launch_at_s):
        raise ValueError("population.campaign.launch_at_s: must be finite")
    launch = sc.population.launch if sc.population else None
    if launch is not None:
        if sc.arrivals.process != "poisson" or sc.arrivals.rate_per_s is not None:
            raise ValueError("arrivals.process: population.launch starts users itself; arrivals must be the default "
                             f"'poisson' without rate_per_s (got {sc.arrivals.process!r})")
        if launch.at_s >= sc.run.duration_s:
            raise ValueError(f"population.launch.at_s: must be < run.duration_s (got {launch.at_s})")
        first = launch.first_session
        if first is not None and first.try_class not in sc.workload.classes:
            raise ValueError(f"population.launch.first_session.try_class: unknown command class {first.try_class!r} "
                             f"(classes: {sorted(sc.workload.classes)})")

