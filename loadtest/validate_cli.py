"""`surge validate-stack`: registered on the `surge` app by `sim.cli`. Light at import: the
stack, Locust and torch are used only inside the command (`loadtest.validate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sim.cli.options import SLO_BREACH, Sets, UsageError, floats, need_stack, parse_duration


def register(app: typer.Typer) -> None:
    app.command("validate-stack")(validate_stack)


def validate_stack(
    scenario: Path,
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default runs/validate-<scenario>)")] = None,
    calibrate: Annotated[bool, typer.Option(help="fit the LLM cost model to the stack's engine first; "
                                            "--no-calibrate takes the scenario's as calibrated")] = True,
    loads: Annotated[str, typer.Option(help="load levels, fractions of the measured maximum sustainable "
                                       "throughput")] = "0.2,0.4,0.6,0.8,0.9,1.1",
    repeats: Annotated[int, typer.Option(min=1, max=50, help="seeds per load (s, s+1, ...) on both sides")] = 3,
    seed: Annotated[int | None, typer.Option(help="first seed (default run.seed)")] = None,
    duration: Annotated[str, typer.Option(help="each load run (90, 60s, 2m)")] = "60s",
    warmup: Annotated[str, typer.Option(help="warm-up excluded from every run's figures")] = "10s",
    probe_duration: Annotated[str, typer.Option(help="each capacity probe")] = "40s",
    capacity_tol: Annotated[float, typer.Option(min=0.005, max=1, help="the capacity search stops when its "
                                                "bracket is this narrow (relative)")] = 0.03,
    calibration_repeats: Annotated[int, typer.Option(min=3, max=100, help="repeats of each design step")] = 9,
    capacity: Annotated[float | None, typer.Option(help="the measured capacity as a multiplier of the scenario's "
                                                   "arrival rate: skips the measured search")] = None,
    fault_load: Annotated[float, typer.Option(help="load of the fault-and-recovery run (fraction of capacity); "
                                              "0 = none")] = 0.6,
    trace: Annotated[Path | None, typer.Option(help="a trace scenario (arrivals process trace) whose demand is "
                                               "replayed through both on the calibrated stack as well")] = None,
    trace_load: Annotated[float, typer.Option(min=0.01, max=5, help="the trace's rate: this x the measured "
                                              "capacity, in commands per second")] = 0.6,
    pin: Annotated[bool, typer.Option(help="pin the stack to one core and Locust to the others")] = True,
    host: Annotated[bool, typer.Option(help="calibrate services.host too: the stack's CPU outside the LLM's "
                                       "steps, shared with them (--no-host: the steps alone, wall clock)")] = True,
    core_share: Annotated[bool, typer.Option(help="services.host.cores = the share of the stack's core(s) "
                                             "measured free at calibration (other processes take the rest; "
                                             "always measured and recorded)")] = False,
    quick: Annotated[bool, typer.Option(help="a short miniature: loads 0.3,0.6,0.9, 2 repeats of 15 s, 12 s "
                                        "probes, a 25% capacity bracket, no fault run (options left at "
                                        "their defaults only)")] = False,
    resimulate: Annotated[Path | None, typer.Option(help="no new measurement: predict the runs of this "
                                                    "validation folder again with the --set overrides")] = None,
) -> None:
    """Prove the simulator against the reference stack: predicted vs measured at every load.

    Exit 0 when every target is met, 99 when one is missed (the report says which), 2 for a
    mistake in the arguments."""
    from loadtest.procs import stopped_by_sigterm
    from loadtest.resimulate import resimulate as again
    from loadtest.validate import ValidateOptions, quick_options
    from loadtest.validate import validate_stack as run

    target = out or Path("runs") / f"validate-{scenario.stem}"
    if resimulate is not None:
        if not (resimulate / "validation.json").is_file():
            raise UsageError(f"'--resimulate' must be a validation folder with validation.json (got {resimulate})")
        result = again(resimulate, set_ or [], target)
    else:
        need_stack("validate-stack")
        fractions = floats(loads, "--loads")
        if any(not 0 < f <= 5 for f in fractions):
            raise UsageError(f"'--loads' must be fractions in (0, 5] (got {loads!r})")
        opt = ValidateOptions(scenario, out=target, sets=set_ or [], calibrate=calibrate, loads=fractions,
                              repeats=repeats, seed=seed, duration_s=parse_duration(duration),
                              warmup_s=parse_duration(warmup, "--warmup"),
                              probe_duration_s=parse_duration(probe_duration, "--probe-duration"),
                              capacity=capacity, capacity_tol=capacity_tol, calibration_repeats=calibration_repeats,
                              fault_load=fault_load or None, trace=trace, trace_load=trace_load,
                              pin=pin, host=host, core_share=core_share)
        if quick:
            opt = quick_options(opt)
        if opt.warmup_s >= min(opt.duration_s, opt.probe_duration_s):
            raise UsageError(f"'--warmup' must be shorter than every run (got {warmup!r})")
        with stopped_by_sigterm():  # SIGTERM stops the stack and Locust it started on the way out
            result = run(opt)
    t = result.table
    print(f"MAPE (judged latency cells) {100 * t['mape_judged']:.1f}%; every latency cell {100 * t['mape_latency']:.1f}%")
    for m in t["misses"]:
        print(f"missed: {m}")
    print(f"report: {result.out / 'validation.html'}")
    if not result.met:
        raise typer.Exit(SLO_BREACH)
