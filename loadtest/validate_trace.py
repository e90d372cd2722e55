"""`surge validate-stack --trace TRACE`: a real trace replayed through both sides, compared the
same way as the loads (`loadtest.accuracy`, level kind "trace").

The trace scenario gives the demand (its `arrivals` — process `trace`, the file, its token
columns and `token_scale` —, `population`, `workload`, `proactive` and `slos`); the system is the
calibrated scenario's (services with the fitted cost model and `services.host`, clients), so the
trace runs on what was calibrated and nothing is fitted to it. Its rate is set in commands per
second: `--trace-load` x the measured capacity (the trace keeps its shape, compressed in time by
`arrivals.scale`). Both sides read the trace through `sim.arrivals.load_trace`: the load test
(`loadtest.schedule`) and the simulator (`sim.des.engine`) start the k-th arrival at the k-th
row's instant with the k-th row's lengths, and the seed of each run is the same on both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from loadtest import accuracy as A
from loadtest.plan import write_scenario
from loadtest.safety import LoadTestError
from sim.errors import ScenarioError
from sim.scenario import parse_scenario
from sim.scenario.load import read_yaml
from sim.shipped import resolve

if TYPE_CHECKING:
    from loadtest.validate import ValidateOptions

# what the trace scenario decides; everything else comes from the calibrated scenario
DEMAND = ("name", "description", "arrivals", "population", "workload", "proactive", "slos")


def trace_scenario(trace: Path, calibrated: Path, folder: Path) -> Path:
    """`folder/scenario.yaml`: the trace scenario's demand (`DEMAND`) on the calibrated system,
    with a copy of the trace file. A row's lengths go to its command's first LLM call, chat or
    agent class alike, on both sides (`sim.rules.calls.trace_lengths`)."""
    src = resolve(trace)
    demand = read_yaml(src)
    if (demand.get("arrivals") or {}).get("process") != "trace":
        raise ScenarioError("'--trace' must name a scenario whose arrivals replay a trace (process: trace)",
                            file=str(src), path="arrivals.process")
    data = yaml.safe_load(calibrated.read_text())
    for key in DEMAND:
        if key in demand:
            data[key] = demand[key]
        else:
            data.pop(key, None)
    parse_scenario(data, file=str(src), base_dir=src.parent)  # a mistake is found now, not after the loads
    return write_scenario(data, folder, src.parent)


def trace_multiplier(trace_file: Path, rate_per_s: float, duration_s: float) -> float:
    """The arrival multiplier at which the trace offers `rate_per_s` commands per second, checked
    to cover a run of `duration_s` seconds."""
    from loadtest.validate import offered_per_unit
    from sim.arrivals import load_trace
    from sim.scenario import load_scenario

    per_unit = offered_per_unit(trace_file)
    if not per_unit > 0:
        raise ScenarioError("the trace needs at least two rows at distinct instants", file=str(trace_file),
                            path="arrivals.trace")
    multiplier = rate_per_s / per_unit
    sc = load_scenario(trace_file)
    span_s = float(load_trace(sc, Path(sc.base_dir)).times_s[-1]) / multiplier
    if span_s < duration_s:
        raise LoadTestError(f"'--trace-load': at {rate_per_s:.3g} commands/s the trace covers {span_s:.0f} s, less "
                            f"than a run's {duration_s:g} s (lower --trace-load or --duration, or a longer trace)")
    return multiplier


def trace_facts(trace: Path, multiplier: float, rate_per_s: float) -> dict[str, Any]:
    """What `validation.json` records of the trace level."""
    return {"scenario": str(trace), "multiplier": multiplier, "offered_per_s": rate_per_s}


def trace_level(opt: ValidateOptions, scen_file: Path, rate_per_s: float, seeds: list[int],
                stack_cpus: tuple[int, ...] | None, locust_cpus: tuple[int, ...] | None,
                log: list[dict[str, Any]]) -> tuple[A.Level, dict[str, Any]]:
    """The trace scenario's demand on the calibrated system (`loadtest.validate_trace`), replayed
    at `rate_per_s` commands per second by its own stack and simulated with the same seeds."""
    from loadtest.validate import Bench, Stack

    assert opt.trace is not None
    folder = opt.out.resolve() / "trace"
    trace_file = trace_scenario(opt.trace, scen_file, folder)
    multiplier = trace_multiplier(trace_file, rate_per_s, opt.duration_s)
    lv = A.Level("trace", "trace", opt.trace_load, multiplier)
    with Stack(trace_file, folder / "stack", opt.stack_options, stack_cpus) as stack:
        Bench(opt, trace_file, stack, locust_cpus, log).level(lv, seeds, opt.duration_s, faults=False)
    return lv, trace_facts(opt.trace, multiplier, rate_per_s)
