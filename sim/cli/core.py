"""The core `surge` subcommands: validate, schema, run, report, compare, check, stack serve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sim.cli.options import SLO_BREACH, DataDir, Jobs, Seed, Sets, need_stack, progress


def register(app: typer.Typer) -> None:
    for fn in (validate, schema, run, examples, init):
        app.command()(fn)
    app.command("report")(report_cmd)
    app.command()(compare)
    app.command()(check)
    stack_app = typer.Typer(no_args_is_help=True, help="The reference agent stack.")
    stack_app.command("serve")(stack_serve)
    app.add_typer(stack_app, name="stack")


def validate(scenario: Path, set_: Sets = None, data_dir: DataDir = None) -> None:
    """Check a scenario file and the data files it names; print a one-line verdict."""
    from sim.scenario import load_scenario

    sc = load_scenario(scenario, set_ or [], data_dir=data_dir)
    print(f"ok: {scenario} ({sc.name}: {len(sc.workload.classes)} classes, {len(sc.services.names())} services, "
          f"{len(sc.faults)} faults)")


def examples() -> None:
    """List the scenarios that ship with surge (any command takes their names, e.g. `feb8_outage`)."""
    from sim.scenario import load_scenario
    from sim.shipped import examples as shipped
    from sim.shipped import scenarios_dir

    root = scenarios_dir()
    for rel in shipped():
        sc = load_scenario(root / rel)
        print(f"{str(rel.with_suffix('')):<34} {sc.description[:80]}")
    print(f"({root})")


def init(folder: Path) -> None:
    """Copy the shipped scenarios (with their data and mitigation overlays) into FOLDER to edit."""
    from sim.shipped import copy_to

    print(f"scenarios copied to {copy_to(folder)}")


def schema() -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    from sim.scenario import json_schema

    print(json.dumps(json_schema(), indent=2))


def run(
    scenario: Path,
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/<scenario>)")] = None,
    seed: Seed = None,
    replications: Annotated[int, typer.Option(min=1, max=10_000)] = 1,
    jobs: Jobs = 2,
    report: Annotated[bool, typer.Option(help="write the HTML/Markdown report")] = True,
    fail_on_slo: Annotated[bool, typer.Option(help=f"exit {SLO_BREACH} when an SLO is missed")] = False,
    data_dir: DataDir = None,
    engine: Annotated[str, typer.Option(help="des (SimPy), fleet (vectorised) or auto (sim.engines.choose)")] = "des",
    scale: Annotated[str | None, typer.Option(help="scale population and capacities by a factor, or 'full' "
                                                   "(the real fleet: 1 / population.scale)")] = None,
    fleet_dt: Annotated[float | None, typer.Option(min=0.001, max=60.0, help="the fleet engine's time step, s "
                                                    "(default: fine enough for the scenario's latencies)")] = None,
    fleet_max_dt: Annotated[float | None, typer.Option(min=0.001, max=60.0, help="the fleet engine's adaptive step: "
                                                        "its longest, s (long steps only while nothing waits; "
                                                        "docs/fleet.md); default: a fixed step")] = None,
) -> None:
    """Simulate a scenario (SimPy engine by default; --engine fleet|auto) and write a run folder."""
    from sim.engines import choose
    from sim.results import writable_folder
    from sim.runner import run_replications, run_single
    from sim.scenario import load_scenario

    sc = load_scenario(scenario, set_ or [], seed=seed, data_dir=data_dir)
    if scale is not None:
        from sim.rules.scaling import scale_factor, scale_scenario

        sc = scale_scenario(sc, scale_factor(sc, scale))
    which = choose(sc, engine)  # an engine that cannot run the scenario says so before any folder is made
    folder = writable_folder(out or Path("runs") / sc.name)
    with progress(f"simulating {sc.name} ({which})") as tick:
        if replications == 1:
            results = run_single(sc, folder, tick, engine=which, fleet_dt=fleet_dt, fleet_max_dt=fleet_max_dt)
            _print_summary(results)
            _metastability(results, sc, folder)
        else:
            results = run_replications(sc, folder, replications, jobs, tick, engine=which, fleet_dt=fleet_dt,
                                        fleet_max_dt=fleet_max_dt)
            _print_summary(json.loads((folder / "replications.json").read_text()))
    if report:
        _report(folder)
    print(f"results: {folder}")
    if fail_on_slo and not all(r["pass"] for r in results.summary["slos"]):
        raise typer.Exit(SLO_BREACH)


def report_cmd(run_dir: Path, out: Annotated[Path | None, typer.Option()] = None) -> None:
    """Render report.html, report.md and summary.json for a run (or replications) folder."""
    _report(run_dir, out)


def compare(run_dirs: list[Path], out: Annotated[Path, typer.Option()] = Path("runs/compare")) -> None:
    """Overlay runs: the same figures, a KPI table with differences (paired CIs on shared seeds)."""
    import reports

    path = reports.compare_runs(run_dirs, out)
    print(f"comparison: {path}")


def check(
    run_dir: Path,
    baseline: Annotated[Path, typer.Option(help="baseline KPIs with tolerances (YAML/JSON)")],
    write_baseline: Annotated[bool, typer.Option(help="write the baseline from this run instead")] = False,
) -> None:
    """CI gate: compare a run's KPIs with a baseline; exit 99 on a regression."""
    import reports

    if write_baseline:
        reports.write_baseline(run_dir, baseline)
        print(f"baseline written: {baseline}")
        return
    table, ok = reports.check_run(run_dir, baseline)
    print(table)
    if not ok:
        raise typer.Exit(SLO_BREACH)


def stack_serve(
    scenario: Annotated[Path | None, typer.Option(help="configure the stack from a scenario")] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    scale: Annotated[float, typer.Option(help="scale the scenario (arrivals and every capacity)")] = 1.0,
    set_: Sets = None,
    db: Annotated[Path | None, typer.Option(help="SQLite file of orders and payments (default: a folder under "
                                                 "the system's temp dir, never the working directory)")] = None,
) -> None:
    """Serve the reference agent stack (FastAPI on uvicorn) on loopback; says where it listens."""
    need_stack("stack serve")
    from loadtest.stack.__main__ import main as stack_main

    args = ["--host", host, "--port", str(port), "--scale", str(scale)]
    args += ["--scenario", str(scenario)] if scenario else []
    args += ["--db", str(db)] if db else []
    for item in set_ or []:
        args += ["--set", item]
    raise typer.Exit(stack_main(args))


def _print_summary(results) -> None:  # type: ignore[no-untyped-def]
    """A run's Results, or a replications summary (mean and 95% CI per KPI)."""
    from reports.terminal import print_summary

    print_summary(results)


def _metastability(results, sc, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """Write metastability.json (onset, recovery, amplification); say it when there was an outage."""
    from reports.derived import write_metastability
    from sim.campaign import analyse, format_analysis

    a = analyse(results, scenario=sc)
    write_metastability(folder, a)
    if a.get("onset_s") is not None:
        print(format_analysis(a))


def _report(folder: Path, out: Path | None = None) -> None:
    import reports

    path = reports.render_report(folder, out)
    print(f"report: {path}")
