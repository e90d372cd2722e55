"""`surge validate-stack`: the simulator against the reference stack, predicted against measured
at every load, in one command.

1. **Calibrate** (`calibrate`): the scenario's LLM cost model is fitted to the stack's own engine
   in-process (`loadtest.calibrate`), unless the scenario is taken as calibrated. The result is
   `OUT/scenario.yaml`; every run below reads it, and nothing is fitted after this step.
2. **Capacity** (`loadtest.capacity`): the maximum sustainable throughput, searched by short runs
   on both sides with one rule: simulated first (cheap), then measured, starting from there.
3. **Loads**: load tests at fractions of the *measured* capacity (20% ... 110%), `repeats` seeds
   each (s, s+1, ...); each is simulated with the same seed, so with the same arrival instants.
4. **Fault**: the scenario's faults at `fault_load`, the same seeds; recovery time on both sides.
5. **Trace** (optional, `loadtest.validate_trace`): a trace scenario's demand on the calibrated
   system, replayed through both at a fraction of the measured capacity, compared the same way.
6. **Table** (`loadtest.accuracy`) and report (`reports.validation`): `OUT/validation.{json,md,html}`.

The stack runs pinned to its own core and Locust to the others (`pin`), so the load generator
does not share the stack's CPU. Runs live under `OUT/runs/LEVEL/seed-S/` (the load test's run
folders), so `resimulate` can predict them again with another model without measuring again.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from loadtest import accuracy as A
from loadtest import stackcost
from loadtest.capacity import CapacitySearch, find_capacity
from loadtest.credentials import Credentials
from loadtest.plan import write_scenario
from loadtest.procs import StackProcess, core_share, on_cores
from loadtest.safety import LoadTestError, fetch
from loadtest.scrape import parse
from sim.results import Results
from sim.scenario import apply_override, parse_scenario
from sim.scenario.load import read_yaml
from sim.scenario.services import FittedCost, Host, RooflineCost
from sim.shipped import resolve

DEFAULT_LOADS = (0.2, 0.4, 0.6, 0.8, 0.9, 1.1)


@dataclass
class ValidateOptions:
    """What `surge validate-stack` runs (durations in seconds, loads as fractions of capacity)."""

    scenario: Path
    out: Path = Path("runs/validate-stack")
    sets: list[str] = field(default_factory=list)
    calibrate: bool = True  # fit the cost model first; False: take the scenario's as calibrated
    calibration_repeats: int = 9
    loads: tuple[float, ...] = DEFAULT_LOADS
    repeats: int = 3
    seed: int | None = None  # first seed (default run.seed)
    duration_s: float = 60.0  # each load run
    warmup_s: float = 10.0
    probe_duration_s: float = 40.0  # each capacity probe
    capacity_tol: float = 0.03
    capacity: float | None = None  # the measured capacity as an arrival multiplier: skip its search
    host: bool = True  # calibrate `services.host` too (the stack's CPU outside the LLM's steps)
    host_requests: int = 200  # requests per shape of the host calibration
    # the host's cores = pinned cores x the share of them measured free at calibration; off by
    # default: a constant share slows short requests that CFS runs at once (docs/validation.md)
    core_share: bool = False
    fault_load: float | None = 0.6  # None: no fault run
    trace: Path | None = None  # a trace scenario to replay through both
    trace_load: float = 0.6  # the trace's rate: this x the measured capacity, in commands per second
    pin: bool = True
    stack_options: dict[str, Any] = field(default_factory=lambda: {"torch_threads": 1})
    workers: int = 0


# what `--quick` changes (where the option is left at its default): a miniature of the full run
QUICK: dict[str, Any] = {"loads": (0.3, 0.6, 0.9), "repeats": 2, "duration_s": 15.0, "warmup_s": 3.0,
                         "probe_duration_s": 12.0, "capacity_tol": 0.25, "calibration_repeats": 3,
                         "host_requests": 40, "fault_load": None}


def quick_options(opt: ValidateOptions) -> ValidateOptions:
    """`opt` with `QUICK` in place of every option still at its default."""
    default = ValidateOptions(opt.scenario)
    return replace(opt, **{k: v for k, v in QUICK.items() if getattr(opt, k) == getattr(default, k)})


@dataclass
class Validation:
    """What a validation produced: the table (`loadtest.accuracy.error_table`) and its files."""

    table: dict[str, Any]
    data: dict[str, Any]
    out: Path
    files: list[Path] = field(default_factory=list)

    @property
    def met(self) -> bool:
        return bool(self.table["met"])


# ---- where things run ------------------------------------------------------------------------
def core_split(pin: bool) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """(stack cores, Locust cores): the stack on the last core this process may use, Locust on the
    rest; (None, None) without pinning or with one core."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None, None
    return (cores[-1],), tuple(cores[:-1])


class Stack:
    """One reference stack serving a scenario file for many load runs (pinned; its own secrets)."""

    def __init__(self, scenario_file: Path, folder: Path, options: dict[str, Any], cpus: tuple[int, ...] | None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.credentials = Credentials.for_new_stack()
        self.proc = StackProcess(scenario_file, folder, self.credentials, options=options, cpus=cpus)

    def __enter__(self) -> Stack:
        self.proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stop()

    @property
    def url(self) -> str:
        return self.proc.url

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        """Until nothing is admitted, running or waiting in the stack (work left by the last run)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                status, body, _ = fetch(self.url + "/metrics", 2.0)
            except OSError:
                status, body = 0, b""
            if status == 200:
                total, _ = parse(body.decode(errors="replace"))
                busy = sum(total.get(k, 0.0) for k in ("surge_gateway_in_progress", "surge_gateway_queue_depth",
                                                       "vllm:num_requests_running", "vllm:num_requests_waiting"))
                if busy == 0:
                    return
            time.sleep(0.5)


# ---- the scenario every run reads -------------------------------------------------------------
def base_scenario(opt: ValidateOptions, cpus: tuple[int, ...] | None) -> tuple[Path, dict[str, Any]]:
    """`OUT/scenario.yaml`: the scenario with the overrides and (unless taken as calibrated) the
    cost model fitted to the stack's engine on the stack's core. Returns (file, calibration)."""
    src = resolve(opt.scenario)
    data = read_yaml(src)
    for item in opt.sets:
        apply_override(data, item, file=str(src))
    sc = parse_scenario(data, file=str(src), base_dir=src.parent)
    info: dict[str, Any] = {"calibrated": False, "cost_model": _cost_of(sc)}
    if opt.calibrate:
        from loadtest.calibrate import calibrate

        # with a host model a step costs CPU time (its duration is what sharing the core makes of it),
        # timed with the stack's replicas stepping at once on its core, as they do under load: each
        # step's CPU then includes what interleaving with the other replica costs it (caches)
        clock = "cpu" if opt.host else "wall"
        engines = sc.services.llm.replicas if opt.host and sc.services.llm else 1
        with on_cores(cpus):
            fit = calibrate(sc, repeats=opt.calibration_repeats, threads=opt.stack_options.get("torch_threads") or 1,
                            clock=clock, replicas=engines)
        data.setdefault("services", {}).setdefault("llm", {})["cost_model"] = fit.cost_model()
        data["services"].pop("host", None)  # measured again on the running stack (`calibrate_stack_host`)
        info = {"calibrated": True, "cost_model": fit.cost_model(), "r2": fit.r2, "wall_s": fit.wall_s,
                "max_abs_rel_error": fit.max_abs_rel_error, "design_steps": len(fit.samples),
                "how": f"the stack's engine in-process, {engines} engine(s) at once, back to back, medians of the "
                       f"{clock} clock, on the stack's core"}
    parse_scenario(data, file=str(src), base_dir=src.parent)
    return write_scenario(data, opt.out.resolve(), src.parent), info


def _cost_of(sc: Any) -> dict[str, Any] | None:
    return sc.services.llm.cost_model.model_dump() if sc.services.llm else None


def arrival_scale(scenario_file: Path) -> float:
    """The scenario's own `arrivals.scale` (a multiplier x runs at x times it)."""
    return float((yaml.safe_load(scenario_file.read_text()).get("arrivals") or {}).get("scale", 1.0))


def offered_per_unit(scenario_file: Path) -> float:
    """Commands per second the scenario offers at multiplier 1 (sessions x commands per session;
    a trace: its rows over its span, at its own `arrivals.scale`)."""
    from sim.arrivals import load_trace
    from sim.scenario import load_scenario

    sc = load_scenario(scenario_file)
    per_session = sc.population.commands_per_session.mean if sc.population else 1.0
    if sc.arrivals.process != "trace":
        return float(sc.base_rate_per_s * per_session)
    times = load_trace(sc, Path(sc.base_dir)).times_s
    return float(per_session * (len(times) - 1) / times[-1]) if len(times) > 1 and times[-1] > 0 else math.nan


def overrides(scenario_file: Path, multiplier: float, seed: int, warmup_s: float, faults: bool) -> list[str]:
    """The `--set`s of one run: the arrival multiplier, the seed, the warm-up (and no faults)."""
    out = [f"arrivals.scale={arrival_scale(scenario_file) * multiplier!r}", f"run.seed={seed}",
           f"run.warmup_s={warmup_s:g}"]
    return out + ([] if faults else ["faults=[]"])


HOST_STREAMS = 4  # chats and agent commands in flight at once while the host CPU is calibrated (2 per replica)


def calibrate_stack_host(opt: ValidateOptions, scenario_file: Path, stack: Stack, stack_cpus: tuple[int, ...] | None,
                         locust_cpus: tuple[int, ...] | None) -> dict[str, Any]:
    """`services.host` measured on the running stack (`loadtest.calibrate_host`), from the load
    generator's cores, and written into the scenario every run reads."""
    from loadtest.calibrate_host import calibrate_host, describe, write_host
    from sim.scenario import load_scenario

    assert stack.proc.proc is not None
    cores = len(stack_cpus) if stack_cpus else len(os.sched_getaffinity(0))
    with on_cores(locust_cpus):
        result = calibrate_host(load_scenario(scenario_file), stack.url, stack.proc.proc.pid, cores,
                                opt.host_requests, stack.credentials, streams=HOST_STREAMS)
    # other processes on the stack's core take their part of it: measured once, here, like the rest
    share = core_share(stack_cpus, 2.0)
    result |= {"cores_pinned": cores, "core_share": share}
    if opt.core_share:
        result["host"]["cores"] = float(f"{cores * share:.3g}")
    write_host(scenario_file, result["host"])
    print(describe(result), flush=True)
    return result


# ---- runs -------------------------------------------------------------------------------------
def simulate_at(scenario_file: Path, multiplier: float, seed: int, duration_s: float | None, warmup_s: float,
                faults: bool = False, sets: list[str] | None = None) -> Results:
    """The SimPy engine on the scenario at `multiplier` x its arrival rate (as a load run is cut)."""
    from loadtest.plan import prepare_scenario
    from loadtest.recovery import recovery
    from sim.des import simulate

    more = overrides(scenario_file, multiplier, seed, warmup_s, faults) + list(sets or [])
    _, sc, _ = prepare_scenario(scenario_file, 1.0, duration_s, more)
    res = simulate(sc)
    res.meta["recovery"] = recovery(res)
    return res


@dataclass
class Bench:
    """Load runs against one stack: each a `surge loadtest` run folder, simulated with its seed."""

    opt: ValidateOptions
    scenario_file: Path
    stack: Stack
    locust_cpus: tuple[int, ...] | None
    log: list[dict[str, Any]] = field(default_factory=list)

    def measure(self, folder: Path, multiplier: float, seed: int, duration_s: float | None, faults: bool,
                simulate: bool) -> Any:
        from loadtest.runner import Options, run_loadtest

        """One load run (measured, and simulated with its seed when `simulate`). A run the machine
        stalled (Locust wrote nothing, or nothing arrived or ended after the warm-up: `stalled`)
        is measured once more, in FOLDER-again; a run that only came out slow or failing is kept."""
        for attempt in (folder, folder.with_name(folder.name + "-again")):
            self.stack.wait_idle()
            load_avg, share = os.getloadavg()[0], core_share(self.stack.proc.cpus, 1.0)
            t, before = time.monotonic(), stackcost.snapshot(self.stack.url, self.stack.pid)
            o = Options(self.scenario_file, duration_s=duration_s or _duration(self.scenario_file), out=attempt,
                        host=self.stack.url, sets=overrides(self.scenario_file, multiplier, seed, self.opt.warmup_s,
                                                            faults),
                        simulate=simulate, report=False, live=False, faults=faults, credentials=self.stack.credentials,
                        locust_cpus=self.locust_cpus, workers=self.opt.workers)
            try:
                run = run_loadtest(o)
                why = stalled(run.measured)
            except LoadTestError as e:
                if attempt != folder:
                    raise
                why = str(e)
            cpu = stackcost.compare(before, stackcost.snapshot(self.stack.url, self.stack.pid), *self._models())
            self.log.append({"folder": str(attempt), "multiplier": multiplier, "seed": seed, "load_average_1m": load_avg,
                             "core_share": share, "wall_s": time.monotonic() - t, "stalled": why, "stack_cpu": cpu})
            name = attempt.relative_to(self.opt.out.resolve())
            print(f"  {name}: {stackcost.describe(cpu)}", flush=True)
            if why is None:
                print(f"  {name}: x{multiplier:.3g}, seed {seed}, load average {load_avg:.1f}, stack's core "
                      f"{100 * share:.0f}% free: success {run.measured.summary.get('success_rate', math.nan):.3f}",
                      flush=True)
                return run
            print(f"  {name}: stalled ({why}), load average {load_avg:.1f}", flush=True)
        return run  # stalled twice: kept as measured (its empty cells are NaN in the table)

    def _models(self) -> tuple[FittedCost | RooflineCost | None, Host | None]:
        """The scenario's step cost and `services.host` (for `stackcost.compare`)."""
        from sim.scenario import load_scenario

        sv = load_scenario(self.scenario_file).services
        return (sv.llm.cost_model if sv.llm else None), sv.host

    def level(self, lv: A.Level, seeds: list[int], duration_s: float | None, faults: bool) -> A.Level:
        for s in seeds:
            run = self.measure(self.opt.out.resolve() / "runs" / _slug(lv.label) / f"seed-{s}", lv.multiplier, s,
                               duration_s, faults, simulate=True)
            lv.measured.append(run.measured)
            lv.simulated.append(run.simulated)
            lv.runs.append(str(run.out.relative_to(self.opt.out.resolve())))
        return lv


def stalled(r: Results) -> str | None:
    """Why a measured run says nothing about the stack (the machine stalled Locust or the stack):
    no command arrived after the warm-up, or none ended (completed or failed); else None."""
    s = r.summary
    if not s.get("arrived"):
        return "no command arrived after the warm-up"
    if not (s.get("completed") or 0) + (s.get("failed") or 0):
        return "no command ended after the warm-up"
    return None


def _duration(scenario_file: Path) -> float:
    return float((yaml.safe_load(scenario_file.read_text()).get("run") or {}).get("duration_s", 3600))


def _slug(label: str) -> str:
    return label.replace("%", "pct").replace(" ", "-")


def search_capacity(opt: ValidateOptions, scenario_file: Path, seed: int, bench: Bench | None,
                    sets: list[str] | None = None) -> tuple[CapacitySearch, CapacitySearch | None]:
    """The maximum sustainable multiplier simulated, then measured (starting from the simulated
    one; the same rule, probe length and seed on both sides). No bench: only simulated."""
    sim = find_capacity(lambda x: [simulate_at(scenario_file, x, seed, opt.probe_duration_s, opt.warmup_s, sets=sets)],
                        1.0, rel_tol=opt.capacity_tol)
    if bench is None:
        return sim, None
    folder = opt.out.resolve() / "capacity"

    def probe(x: float) -> list[Results]:
        return [bench.measure(folder / f"x{x:.4g}", x, seed, opt.probe_duration_s, faults=False,
                              simulate=False).measured]

    start = sim.capacity if math.isfinite(sim.capacity) else 1.0
    return sim, find_capacity(probe, start, rel_tol=opt.capacity_tol, step=1.25)


# ---- the whole validation ---------------------------------------------------------------------
def _label(fraction: float) -> str:
    return f"{100 * fraction:.0f}%"


def validate_stack(opt: ValidateOptions) -> Validation:
    """Calibrate, find the capacity, run every load, the fault and the trace, and write the report."""
    from sim.scenario import load_scenario

    out = opt.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    stack_cpus, locust_cpus = core_split(opt.pin)
    started = {"load_average_1m": os.getloadavg()[0], "unix_s": time.time()}
    scen_file, calib = base_scenario(opt, stack_cpus)
    if opt.trace is not None:  # a mistake in the trace scenario is found now, not after the loads
        from loadtest.validate_trace import trace_scenario

        trace_scenario(opt.trace, scen_file, out / "trace")
    sc = load_scenario(scen_file)
    seed = opt.seed if opt.seed is not None else sc.run.seed
    seeds = [seed + k for k in range(opt.repeats)]
    with Stack(scen_file, out / "stack", opt.stack_options, stack_cpus) as stack:
        if opt.calibrate and opt.host:
            calib["host"] = calibrate_stack_host(opt, scen_file, stack, stack_cpus, locust_cpus)
        bench = Bench(opt, scen_file, stack, locust_cpus)
        sim_cap, meas_cap = search_capacity(opt, scen_file, seed, bench if opt.capacity is None else None)
        cap = meas_cap.capacity if meas_cap is not None else float(opt.capacity or math.nan)
        if not (math.isfinite(cap) and cap > 0):
            raise LoadTestError(f"no sustainable load was found for the stack (probes: {meas_cap and meas_cap.probes})")
        levels = [bench.level(A.Level(_label(f), "overload" if f > 1 else "load", f, f * cap), seeds, opt.duration_s,
                              faults=False) for f in opt.loads]
        if opt.fault_load and sc.faults:
            levels.append(bench.level(A.Level("fault", "fault", opt.fault_load, opt.fault_load * cap), seeds, None,
                                      faults=True))
    capacity = A.capacity_cell(sim_cap.capacity, cap, offered_per_unit(scen_file), A.Targets())
    capacity["measured_search"] = meas_cap is not None
    trace = None
    if opt.trace is not None:
        from loadtest.validate_trace import trace_level

        lv, trace = trace_level(opt, scen_file, opt.trace_load * capacity["meas_per_s"], seeds, stack_cpus,
                                locust_cpus, bench.log)
        levels.append(lv)
    data = {"scenario": str(opt.scenario), "options": _options_json(opt), "calibration": calib, "trace": trace,
            "cores": {"stack": stack_cpus, "locust": locust_cpus}, "started": started,
            "ended": {"load_average_1m": os.getloadavg()[0], "unix_s": time.time()},
            "capacity_search": {"sim": sim_cap.to_json(), "meas": meas_cap.to_json() if meas_cap else None},
            "seed": seed, "levels": [_manifest(lv) for lv in levels], "runs": bench.log}
    return finish(levels, capacity, data, out)


def finish(levels: list[A.Level], capacity: dict[str, Any], data: dict[str, Any], out: Path) -> Validation:
    """The error table, `validation.json` and the report (`reports.validation`)."""
    from reports.derived import write_json
    from reports.validation import write_validation

    table = A.error_table(levels, capacity=capacity)
    data["table"] = table
    files = [write_json(out / "validation.json", data), *write_validation(data, out)]
    return Validation(table, data, out, files)


def _manifest(lv: A.Level) -> dict[str, Any]:
    return {"label": lv.label, "kind": lv.kind, "fraction": lv.fraction, "multiplier": lv.multiplier, "runs": lv.runs}


def _options_json(opt: ValidateOptions) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opt).items()}
