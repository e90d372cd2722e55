"""`surge` subcommands for capacity planning (registered by `sim.cli`):

    surge sweep SCENARIO --vary path=v1,v2 [--vary ...]   grid, table and figures
    surge plan SCENARIO --vary services.llm.replicas      cheapest configuration meeting every SLO
    surge margin SCENARIO [--along load|magnitude|duration]   how far before it locks in

Every run is cached under --cache by (scenario hash, seed, engine, surge version): an interrupted
command, run again, resumes from the runs it had finished. The engine and matplotlib are
imported inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from sim.cli.options import Jobs, Sets

Vary = Annotated[list[str], typer.Option("--vary", help="path=v1,v2,... or path=lo..hi[..step]")]
Overlay = Annotated[Path | None, typer.Option(help="an overlay file applied on the scenario (merge/set)")]
Engine = Annotated[str, typer.Option(help="simulation engine: des (SimPy), fleet (vectorised) or auto (see `surge run --help`)")]
BackendOpt = Annotated[str, typer.Option(help="local (process pool) or ray")]
RayAddress = Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local one)")]
Cache = Annotated[Path, typer.Option(help="folder of cached runs (shared by sweep, plan and margin)")]
NoCache = Annotated[bool, typer.Option("--no-cache", help="neither read nor write the cache")]
Out = Annotated[Path | None, typer.Option(help="output folder (default runs/<scenario>-<command>)")]


@contextlib.contextmanager
def _evaluators(scenario: Path, overlay: Path | None, sets: list[str] | None, engine: str, backend: str,
                ray_address: str | None, jobs: int, cache: Path, no_cache: bool) -> Iterator[Any]:
    """A factory of Evaluators sharing one backend, cache and progress bar (ETA on stderr,
    silent when stderr is not a terminal); closes the backend; says how to resume on Ctrl-C."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from sim.planning import Evaluator, PointCache, Source, make_backend

    be = make_backend(backend, jobs, ray_address)
    store = PointCache(None if no_cache else cache)
    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console,
                   transient=True, disable=not sys.stderr.isatty())
    made: list[Any] = []

    def make(label: str, *more_sets: str) -> Any:
        task = bar.add_task(label, total=1)
        source = Source(scenario, overlay, (*(sets or []), *more_sets))
        ev = Evaluator(source, engine, be, store,
                       lambda done, total: bar.update(task, completed=done, total=max(1, total)))
        made.append(ev)
        return ev

    try:
        with bar:
            yield make
    except KeyboardInterrupt:
        done = sum(ev.computed for ev in made)
        print(f"interrupted: {done} runs finished and cached in {cache}; run the same command again to resume",
              file=sys.stderr)
        raise typer.Exit(130) from None
    finally:
        be.close()


def _out(out: Path | None, name: str, what: str) -> Path:
    folder = out or Path("runs") / f"{name}-{what}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sweep(
    scenario: Path, vary: Vary, replications: Annotated[int, typer.Option(min=1, max=10_000)] = 5,
    confidence: Annotated[float, typer.Option(help="of the CI bands")] = 0.95,
    overlay: Overlay = None, set_: Sets = None, engine: Engine = "des", backend: BackendOpt = "local",
    ray_address: RayAddress = None, jobs: Jobs = 2, cache: Cache = Path("runs/cache"), no_cache: NoCache = False,
    out: Out = None,
) -> None:
    """Run a grid over scenario fields (common random numbers); write sweep.json, a CSV and
    Markdown table and figures (SLO metrics with CI bands, a heatmap, cost vs attainment)."""
    from sim.planning import parse_axis
    from sim.planning import sweep as run_sweep
    from sim.planning.text import format_sweep

    axes = [parse_axis(v) for v in vary]
    with _evaluators(scenario, overlay, set_, engine, backend, ray_address, jobs, cache, no_cache) as make:
        sw = run_sweep(make("sweep"), axes, replications, confidence)
    folder = _out(out, sw.scenario, "sweep")
    path = sw.write(folder)
    print(format_sweep(sw.to_json()))
    from reports.planning import sweep_report

    for p in [path, *sweep_report(path)]:
        print(f"wrote {p}")


def plan(
    scenario: Path, vary: Vary,
    confidence: Annotated[float, typer.Option(help="every SLO is met with this confidence (jointly)")] = 0.95,
    faults: Annotated[str, typer.Option(help="both: plan with and without the scenario's faults; with; without")]
    = "both",
    min_replications: Annotated[int, typer.Option(min=2)] = 3,
    max_replications: Annotated[int, typer.Option(min=2)] = 10,
    margin: Annotated[bool, typer.Option(help="also find how much more load the answer takes")] = True,
    margin_tol: Annotated[float, typer.Option(help="relative precision of the load margin")] = 0.02,
    overlay: Overlay = None, set_: Sets = None, engine: Engine = "des", backend: BackendOpt = "local",
    ray_address: RayAddress = None, jobs: Jobs = 2, cache: Cache = Path("runs/cache"), no_cache: NoCache = False,
    out: Out = None,
) -> None:
    """The cheapest configuration meeting every SLO with the stated confidence: answer, margin,
    binding SLO, bottleneck and cost, with and without the scenario's faults."""
    from sim.planning import (
        WITH_FAULTS,
        WITHOUT_FAULTS,
        Budget,
        PlanningError,
        PlanOptions,
        Source,
        parse_axis,
    )
    from sim.planning import plan as run_plan
    from sim.planning.text import format_plans

    if faults not in ("both", "with", "without"):
        raise PlanningError(f"--faults: must be both, with or without (got {faults!r})")
    axes = [parse_axis(v) for v in vary]
    options = PlanOptions(Budget(confidence, min_replications, max_replications), margin, margin_tol)
    plans = []
    name = Source(scenario, overlay, tuple(set_ or [])).load().name
    with _evaluators(scenario, overlay, set_, engine, backend, ray_address, jobs, cache, no_cache) as make:
        if faults in ("both", "without"):
            plans.append(run_plan(make("plan without faults", "faults=[]"), axes, WITHOUT_FAULTS, options))
        if faults in ("both", "with"):
            ev = make("plan with faults")
            if ev.scenario(()).faults or faults == "with":
                plans.append(run_plan(ev, axes, WITH_FAULTS, options))
    docs = [p.to_json() for p in plans]
    folder = _out(out, name, "plan")
    path = folder / "plan.json"
    path.write_text(json.dumps({"format": "surge-plan/1", "scenario": name, "engine": engine,
                                "confidence": confidence, "plans": docs}, indent=1, default=str) + "\n")
    print(format_plans(docs))
    from reports.planning import plan_report

    for p in [path, *plan_report(path)]:
        print(f"wrote {p}")


def margin(
    scenario: Path,
    along: Annotated[str, typer.Option(help="load (demand rises), magnitude or duration (the trigger grows)")]
    = "load",
    fault: Annotated[int, typer.Option(help="index of the trigger in the scenario's faults")] = 0,
    replications: Annotated[int, typer.Option(min=1)] = 4,
    tol: Annotated[float, typer.Option(help="precision: relative (load, duration), absolute (fractions)")] = 0.02,
    criterion: Annotated[str, typer.Option(help="metastable (down after the trigger) or stuck_at_end")]
    = "metastable",
    overlay: Overlay = None, set_: Sets = None, engine: Engine = "des", backend: BackendOpt = "local",
    ray_address: RayAddress = None, jobs: Jobs = 2, cache: Cache = Path("runs/cache"), no_cache: NoCache = False,
    out: Out = None,
) -> None:
    """How far demand can rise (or the trigger grow) before this configuration locks in."""
    from sim.planning import PlanningError, outage_margin
    from sim.planning.text import format_margin
    from sim.results import json_safe

    if along not in ("load", "magnitude", "duration"):
        raise PlanningError(f"--along: must be load, magnitude or duration (got {along!r})")
    if criterion not in ("metastable", "stuck_at_end"):
        raise PlanningError(f"--criterion: must be metastable or stuck_at_end (got {criterion!r})")
    with _evaluators(scenario, overlay, set_, engine, backend, ray_address, jobs, cache, no_cache) as make:
        ev = make(f"margin along {along}")
        m = outage_margin(ev, (), along, fault, replications, tol, criterion)  # type: ignore[arg-type]
        name = ev.scenario(()).name
    folder = _out(out, name, "margin")
    path = folder / "margin.json"
    path.write_text(json.dumps(json_safe({"format": "surge-margin/1", "scenario": name, "engine": engine, **m}),
                               indent=1) + "\n")
    print(format_margin(m))
    print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
    app.command("plan")(plan)
    app.command("margin")(margin)
