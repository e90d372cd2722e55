"""The scenario: everything that configures a run, parsed once into frozen typed objects.

Units are in the names (`_s` seconds, `_per_s` rates, `_tokens` tokens). Cross-field rules
(probabilities sum to 1, stages and faults name services that exist) are checked here, so an
engine never meets an inconsistent scenario.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from sim.datafiles import read_column, read_datetime_column, resolve_data_path
from sim.dists import Constant, Distribution
from sim.scenario.clients import Backoff, Clients
from sim.scenario.launch import Launch
from sim.scenario.proactive import Proactive
from sim.scenario.services import Frozen, Services
from sim.scenario.workload import CommandClass, LLMStage, Stage, ToolStage, Workload

# What the SimPy engine can do: it simulates 10^4-10^5 commands per wall-clock second, so a
# higher session rate would take hours per simulated minute (simulate a cell: population.scale).
MAX_SESSION_RATE_PER_S = 100_000
MAX_COMMANDS_PER_SESSION = 10_000
MAX_INTERVALS = 100_000  # results memory: ~3 KB per interval for the agent mix (smoke.yaml)


class Run(Frozen):
    """The simulated window and how results are binned."""

    duration_s: float = Field(default=3600, gt=0, le=1e8, description="simulated time from t=0, seconds")
    interval_s: float = Field(default=60, gt=0, le=1e7, description="width of one results bin (time series, "
                                                                    "histograms), seconds")
    warmup_s: float = Field(default=0, ge=0, le=1e8, description="seconds from t=0 excluded from KPIs and SLO "
                                                                 "verdicts (the system is still filling)")
    start_hour: float = Field(default=0, ge=0, lt=24, description="clock time of t=0 in hours (12.5 = 12:30), for "
                                                                  "the diurnal profile and report axes")
    seed: int = Field(default=1, ge=0, le=2**63 - 1, description="random seed: the same seed gives the same "
                                                                 "results, byte for byte")

    @model_validator(mode="after")
    def _fits(self) -> Run:
        if self.warmup_s >= self.duration_s:
            raise ValueError(f"'warmup_s' must be < 'duration_s' (got {self.warmup_s} >= {self.duration_s})")
        if self.duration_s / self.interval_s > MAX_INTERVALS:
            raise ValueError(f"more than {MAX_INTERVALS:,} intervals: raise 'interval_s'")
        return self


class Campaign(Frozen):
    """A campaign that lifts daily active users from `launch_at_s` on (one value per day)."""

    launch_at_s: float = Field(ge=0, le=1e8, description="simulated time the campaign starts, seconds after t=0")
    daily_active_users: tuple[float, ...] = Field(
        min_length=1, description="daily active users on each day from the launch (day 1, 2, ...); the last value "
                                  "holds after the list ends; users per day")
    cards_per_user: float = Field(default=0, ge=0, le=1000, description="free-order cards held per active user "
                                                                        "(for reports; the engines do not use it)")

    @field_validator("daily_active_users")
    @classmethod
    def _positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [x for x in v if not 0 < x <= 1e10]
        if bad:
            raise ValueError(f"each value must be > 0 and <= 1e10 (got {bad[0]})")
        return v


class Population(Frozen):
    """Who issues commands: DAU, when in the day, how many sessions, and how each session runs."""

    daily_active_users: float = Field(gt=0, le=1e10, description="active users per day before any campaign")
    sessions_per_user_per_day: float = Field(default=1.0, gt=0, le=1e4, description="sessions each active user "
                                                                                    "starts per day")
    diurnal: tuple[float, ...] | None = Field(
        default=None, description="24 relative weights, hour 0..23 of the clock (normalised to mean 1, linear "
                                  "between hour midpoints); none = flat"
    )
    campaign: Campaign | None = Field(default=None, description="a campaign that lifts DAU from a launch time on")
    launch: Launch | None = Field(default=None, description="the campaign's launch as users who join, invite and "
                                  "hold cards (instead of 'campaign')")
    commands_per_session: Distribution = Field(
        default_factory=lambda: Constant(value=1),
        description=f"commands a session issues (rounded, at least 1; mean at most {MAX_COMMANDS_PER_SESSION:,})")
    think_time_s: Distribution = Field(default_factory=lambda: Constant(value=0),
                                       description="pause between a session's commands, seconds")
    scale: float = Field(default=1.0, gt=0, le=1e6, description="fraction of the population simulated (a cell): "
                                                                "1e-4 simulates one user in 10,000")

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

    @field_validator("commands_per_session")
    @classmethod
    def _bounded(cls, v: Distribution) -> Distribution:
        if not v.mean <= MAX_COMMANDS_PER_SESSION:
            raise ValueError(f"mean must be <= {MAX_COMMANDS_PER_SESSION:,} commands per session (got {v.mean:g})")
        return v

    @property
    def peak_factor(self) -> float:
        """Highest rate of the day over the mean rate: the largest diurnal weight over their mean
        times the largest campaign DAU over the baseline DAU (at least 1)."""
        hour = max(self.diurnal) / (sum(self.diurnal) / 24) if self.diurnal else 1.0
        dau = max(self.campaign.daily_active_users) / self.daily_active_users if self.campaign else 1.0
        return hour * max(1.0, dau)


class Trace(Frozen):
    """Replay arrivals from a CSV/JSONL file (relative to the scenario file, inside its folder)."""

    file: str = Field(description="CSV or JSON Lines file, relative to the scenario file and inside its folder; "
                                  "at most 64 MB")
    time_column: str = Field(description="column holding each arrival's time (times need not be sorted)")
    time_unit: Literal["s", "ms", "us", "datetime"] = Field(
        default="s", description="unit of time_column: seconds, milliseconds, microseconds, or ISO 8601 "
                                 "datetimes (all with a time zone or all without)")
    prompt_column: str | None = Field(default=None, description="column of prompt tokens per arrival: replaces "
                                                                "the first LLM call's prompt_tokens")
    output_column: str | None = Field(default=None, description="column of output tokens per arrival: replaces "
                                                                "the first LLM call's output_tokens")
    token_scale: float = Field(default=1.0, gt=0, le=1e6, description="divides both token columns (rounded, at "
                                                                  "least 1): a trace of a large model replayed on a "
                                                                  "small one, same shape")

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

    process: Literal["poisson", "gamma", "weibull", "trace"] = Field(
        default="poisson", description="poisson (memoryless); gamma or weibull (renewal with inter-arrival CV "
                                       "`cv`, bursty when cv > 1); trace (replayed from a file)")
    rate_per_s: float | None = Field(
        default=None, gt=0, le=MAX_SESSION_RATE_PER_S,
        description="base session start rate, sessions per second; none = from the population's DAU")
    cv: float = Field(default=1.0, ge=0.03, le=100, description="coefficient of variation of the gaps between "
                                                                "arrivals (gamma and weibull; 1 = as random as "
                                                                "Poisson)")
    scale: float = Field(default=1.0, gt=0, le=1e6, description="multiplies the rate (trace: compresses time, "
                                                                "2 = twice the rate, same shape)")
    trace: Trace | None = Field(default=None, description="the file to replay, exactly when process is trace")

    @model_validator(mode="after")
    def _trace(self) -> Arrivals:
        if (self.process == "trace") != (self.trace is not None):
            raise ValueError("'trace' must be given exactly when process is 'trace'")
        return self


FaultKind = Literal["capacity_loss", "slowdown", "error_rate", "outage", "session_invalidation", "wrong_item"]


class Fault(Frozen):
    """At `at_s`, for `duration_s`: capacity_loss (magnitude = fraction lost), slowdown (latency
    multiplier), error_rate (probability), outage, session_invalidation (fraction of sessions),
    wrong_item (on a tool that chooses an order's item: the probability it chooses the wrong one,
    an operational mistake the user finds out about afterwards).

    On the LLM fleet, capacity_loss takes down ceil(fraction x replicas) replicas (their work
    fails); replicas that autoscaling adds later start healthy, as replacements for lost machines."""

    at_s: float = Field(ge=0, le=1e8, description="when the fault starts, seconds after t=0 (< run.duration_s)")
    duration_s: float = Field(gt=0, le=1e8, description="how long it lasts, seconds")
    target: str = Field(description="the service hit: gateway, auth, llm or a key of services.tools")
    kind: FaultKind = Field(description="capacity_loss (servers or replicas lost), slowdown (latency multiplied), "
                                        "error_rate (calls fail), outage (all calls fail), session_invalidation "
                                        "(sessions logged out: a login storm; target auth), wrong_item (orders "
                                        "get the wrong item; target a tool)")
    magnitude: float = Field(default=1.0, ge=0, le=1e6, description="fraction lost (capacity_loss), latency "
                                                                    "multiplier >= 1 (slowdown), probability of "
                                                                    "failure (error_rate), fraction of sessions "
                                                                    "lost (session_invalidation) or probability of "
                                                                    "the wrong item (wrong_item)")

    @model_validator(mode="after")
    def _magnitude(self) -> Fault:
        if self.kind in ("capacity_loss", "error_rate", "session_invalidation", "wrong_item") and self.magnitude > 1:
            raise ValueError(f"magnitude of {self.kind} is a fraction in [0, 1] (got {self.magnitude})")
        if self.kind == "slowdown" and self.magnitude < 1:
            raise ValueError(f"magnitude of slowdown is a latency multiplier >= 1 (got {self.magnitude})")
        return self


class SLO(Frozen):
    """Targets for one command class, judged over the run after warm-up (none = not judged)."""

    ttft_p99_s: float | None = Field(default=None, gt=0, le=1e6, description="99th percentile time to first "
                                                                             "token of the class's LLM calls, seconds")
    tpot_p99_s: float | None = Field(default=None, gt=0, le=1e6, description="99th percentile time per output "
                                                                             "token after the first, seconds")
    e2e_p99_s: float | None = Field(default=None, gt=0, le=1e7, description="99th percentile command latency, "
                                                                            "first attempt to success, seconds; "
                                                                            "also the goodput deadline")
    success_rate: float | None = Field(default=None, ge=0, le=1, description="lowest fraction of ended commands "
                                                                             "that succeed (0.999 = three nines)")


class Cost(Frozen):
    """Prices, for planning and for cost and efficiency in reports. An LLM replica-hour costs
    `replica_hour`, else `gpu_hour` x `gpus_per_replica`; every other service costs
    `slot_hour[name]` per concurrency slot per hour (services not named cost nothing)."""

    currency: str = Field(default="USD", min_length=1, max_length=12, description="currency of every price here")
    gpu_hour: float | None = Field(default=None, ge=0, le=1e6, description="price of one GPU for one hour")
    gpus_per_replica: int | None = Field(
        default=None, ge=1, le=1024,
        description="GPUs in one LLM replica (default: the roofline cost model's gpu.count, else 1)")
    replica_hour: float | None = Field(
        default=None, ge=0, le=1e7, description="price of one LLM replica for one hour (instead of gpu_hour x GPUs)")
    slot_hour: dict[str, float] = Field(
        default_factory=dict,
        description="per service (gateway, auth or a tool): price of one concurrency slot for one hour")

    @field_validator("slot_hour")
    @classmethod
    def _prices(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if not 0 <= x <= 1e6}
        if bad:
            name, x = next(iter(bad.items()))
            raise ValueError(f"{name}: a price per slot-hour must be in [0, 1e6] (got {x})")
        return v


class Scenario(Frozen):
    """A whole scenario file. Nothing else configures a run."""

    name: str = Field(min_length=1, max_length=200, description="the scenario's name: names the run folder")
    description: str = Field(default="", max_length=20_000, description="free text for the reader of reports")
    run: Run = Field(default_factory=Run, description="the simulated window, result bins and seed")
    population: Population | None = Field(default=None, description="who issues commands: gives the session "
                                                                    "rate when arrivals.rate_per_s is not set")
    arrivals: Arrivals = Field(default_factory=Arrivals, description="when sessions start")
    workload: Workload = Field(description="the command classes and their stages")
    clients: Clients = Field(default_factory=Clients, description="timeouts, retries and re-login of the clients")
    services: Services = Field(default_factory=Services, description="the stack: gateway, auth, tools, LLM fleet")
    faults: tuple[Fault, ...] = Field(default=(), description="the fault timeline")
    slos: dict[str, SLO] = Field(default_factory=dict, description="targets per command class (keys are class "
                                                                   "names)")
    cost: Cost | None = Field(default=None, description="prices of GPUs, replicas and service slots, for cost "
                                                        "and efficiency in plans and reports; none = not priced")
    proactive: Proactive | None = Field(default=None, description="commands the agent starts by itself: "
                                                                  "follow-ups after successes, schedules")
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
        if self.arrivals.process != "trace" and self.peak_rate_per_s > MAX_SESSION_RATE_PER_S:
            where = "arrivals.rate_per_s" if self.arrivals.rate_per_s is not None else "population.scale"
            raise ValueError(f"{where}: peak session rate {self.peak_rate_per_s:.3g}/s is more than the "
                             f"engine simulates ({MAX_SESSION_RATE_PER_S:,}/s): simulate a smaller cell")
        _check_references(self)
        return self

    @property
    def peak_rate_per_s(self) -> float:
        """Highest session start rate of the rate curve, sessions per second."""
        return self.base_rate_per_s * (self.population.peak_factor if self.population else 1.0)

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
        _check_stages(sc, cname, cls)
    for i, f in enumerate(sc.faults):
        _check_fault(sc, i, f, known)
    _check_proactive(sc)
    for name in (sc.cost.slot_hour if sc.cost else {}):
        if name not in known or name == "llm":
            raise ValueError(f"cost.slot_hour.{name}: unknown service (price slots of {[k for k in known if k != 'llm']}; "
                             "LLM replicas are priced by cost.replica_hour or cost.gpu_hour)")
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


def _check_stages(sc: Scenario, cname: str, cls: CommandClass) -> None:
    held: set[str] = set()
    for i, st in enumerate(cls.stages):
        where = f"workload.classes.{cname}.stages.{i}"
        if st.llm is not None and sc.services.llm is None:
            raise ValueError(f"{where}.llm: needs 'services.llm'")
        t = st.tool
        if t is None:
            continue
        if t.service not in sc.services.tools:
            raise ValueError(f"{where}.tool: unknown service {t.service!r} (services.tools has {sorted(sc.services.tools)})")
        if t.quantity is not None and t.inventory != "hold":
            raise ValueError(f"{where}.tool.quantity: only a 'hold' stage takes a quantity")
        if t.inventory is None:
            continue
        if sc.services.tools[t.service].inventory is None:
            raise ValueError(f"{where}.tool.inventory: services.tools.{t.service} has no 'inventory'")
        if not cls.places_order:
            raise ValueError(f"{where}.tool.inventory: a class that holds stock must place orders "
                             "('places_order: true': the hold belongs to the order)")
        if t.inventory == "confirm" and t.service not in held:
            raise ValueError(f"{where}.tool.inventory: 'confirm' needs an earlier 'hold' on {t.service!r}")
        held.add(t.service)


def _check_fault(sc: Scenario, i: int, f: Fault, known: list[str]) -> None:
    if f.target not in known:
        raise ValueError(f"faults.{i}.target: unknown service {f.target!r} (known: {known})")
    if f.kind == "slowdown" and f.target == "gateway":
        raise ValueError(f"faults.{i}.kind: the gateway has no latency to slow down (use capacity_loss, "
                         "error_rate or outage)")
    if f.kind == "session_invalidation" and f.target != "auth":
        raise ValueError(f"faults.{i}.target: session_invalidation targets 'auth' (got {f.target!r})")
    if f.kind == "wrong_item" and f.target not in sc.services.tools:
        raise ValueError(f"faults.{i}.target: wrong_item targets a tool (got {f.target!r})")
    if f.at_s >= sc.run.duration_s:
        raise ValueError(f"faults.{i}.at_s: must be < run.duration_s (got {f.at_s})")


def _check_proactive(sc: Scenario) -> None:
    classes = sc.workload.classes
    pro = sc.proactive
    for i, fu in enumerate(pro.follow_ups if pro else ()):
        for key in ("after", "start"):
            if getattr(fu, key) not in classes:
                raise ValueError(f"proactive.follow_ups.{i}.{key}: unknown command class {getattr(fu, key)!r} "
                                 f"(classes: {sorted(classes)})")
    for i, sch in enumerate(pro.schedules if pro else ()):
        if sch.start not in classes:
            raise ValueError(f"proactive.schedules.{i}.start: unknown command class {sch.start!r} "
                             f"(classes: {sorted(classes)})")
    started = pro.classes() if pro else set()
    for name, c in classes.items():
        if c.probability == 0 and name not in started:
            raise ValueError(f"workload.classes.{name}.probability: 0 needs a proactive task that starts the class")


__all__ = [
    "SLO", "Arrivals", "Backoff", "Campaign", "Clients", "CommandClass", "Cost", "Fault", "LLMStage", "Population", "Run",
    "Scenario", "Stage", "ToolStage", "Trace", "Workload", "read_trace",
]
