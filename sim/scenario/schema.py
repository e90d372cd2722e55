"""The scenario: everything that configures a run, parsed once into frozen typed objects.

Units are in the names (`_s` seconds, `_per_s` rates, `_tokens` tokens). Cross-field rules
(probabilities sum to 1, stages and faults name services that exist) are checked here, so an
engine never meets an inconsistent scenario.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from sim.datafiles import read_column, read_datetime_column, resolve_data_path
from sim.dists import Constant, Distribution
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
    commands_per_session: Distribution = Field(default_factory=lambda: Constant(value=1))
    think_time_s: Distribution = Field(default_factory=lambda: Constant(value=0))
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


class Trace(Frozen):
    """Replay arrivals from a CSV/JSONL file (relative to the scenario file)."""

    file: str
    time_column: str
    time_unit: Literal["s", "ms", "us", "datetime"] = "s"
    prompt_column: str | None = None
    output_column: str | None = None

    @model_validator(mode="after")
    def _readable(self, info: ValidationInfo) -> Trace:
        ctx = info.context or {}
        read_trace(self, ctx.get("base_dir", "."), ctx.get("data_dir"))  # what a run reads (cached)
        return self


TraceColumns = tuple[tuple[float, ...], tuple[float, ...] | None, tuple[float, ...] | None]


def read_trace(tr: Trace, base_dir: str | Path, data_dir: str | Path | None) -> TraceColumns:
    """(arrival times in seconds, prompt tokens, output tokens) in file order, as the file gives
    them; `DataFileError` when the file or a column is missing, malformed or too large."""
    path = resolve_data_path(tr.file, base_dir, data_dir)
    if tr.time_unit == "datetime":
        times = read_datetime_column(path, tr.time_column)
    else:
        per_s = {"s": 1.0, "ms": 1e3, "us": 1e6}[tr.time_unit]
        times = tuple(t / per_s for t in read_column(path, tr.time_column))
    prompts = read_column(path, tr.prompt_column) if tr.prompt_column else None
    outputs = read_column(path, tr.output_column) if tr.output_column else None
    return times, prompts, outputs


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
    places_order: bool = Field(default=False, description="a success counts as one order placed")
    stages: tuple[Stage, ...] = Field(min_length=1)


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
    _data_dir: str | None = PrivateAttr(default=None)

    @property
    def base_dir(self) -> str:
        """Folder of the scenario file: relative data paths (traces, empirical) start here."""
        return self._base_dir

    @property
    def data_dir(self) -> str | None:
        """Folder that data files must lie in (None: `base_dir`)."""
        return self._data_dir

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
