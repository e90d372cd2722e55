"""`surge` subcommands for the campaign and its outages (registered by sim/cli_extras.py):

    surge explore vulnerability SCENARIO   heatmap of where the system locks in
    surge mitigations SCENARIO             each overlay in scenarios/mitigations/ vs none
    surge validate-campaign SCENARIO       simulated (scaled up) vs published campaign totals
    surge metastability RUN_DIR            stuck after the trigger? time to recover, amplification

Heavy imports (the engine, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

Sets = Annotated[list[str] | None, typer.Option("--set", help="override a field: path.to.field=value")]
Jobs = Annotated[int, typer.Option(min=1, help="worker processes")]


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        from sim.errors import SurgeError

        raise SurgeError(f"expected comma-separated numbers (got {text!r})") from None


def _bar(label: str):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn(label), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                    transient=True, disable=not sys.stderr.isatty())


def vulnerability(
    scenario: Path,
    loads: Annotated[str, typer.Option(help="arrival-rate multipliers")] = "0.75,0.9,1.0,1.05",
    magnitudes: Annotated[str, typer.Option(help="trigger magnitudes")] = "0.7,0.74,0.76,0.78,0.8,0.82",
    durations: Annotated[str, typer.Option(help="trigger durations, seconds")] = "8,9,10,11,12",
    fault: Annotated[int, typer.Option(help="index of the trigger in the scenario's faults")] = 0,
    replications: Annotated[int, typer.Option(min=1)] = 3,
    jobs: Jobs = 2,
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="folder (default runs/<scenario>-vulnerability)")] = None,
) -> None:
    """Map (load x trigger magnitude x trigger duration) to the fraction of replications locked in."""
    from sim.campaign.explore import Grid, explore_vulnerability, format_map

    grid = Grid(_floats(loads), _floats(magnitudes), _floats(durations), replications, fault)
    with _bar("sweeping") as bar:
        task = bar.add_task("", total=1.0)
        vm = explore_vulnerability(scenario, grid, set_ or [], jobs, lambda f: bar.update(task, completed=f))
    folder = out or Path("runs") / f"{vm.scenario}-vulnerability"
    path = vm.write(folder)
    print(format_map(vm))
    from reports.campaign import vulnerability_heatmap

    print(f"map: {path}\nheatmap: {vulnerability_heatmap(path)}")


def mitigations(
    scenario: Path,
    overlay: Annotated[list[Path] | None, typer.Option(help="overlay files (default: every *.yaml in --dir)")] = None,
    dir_: Annotated[Path, typer.Option("--dir", help="folder of overlays")] = Path("scenarios/mitigations"),
    replications: Annotated[int, typer.Option(min=1)] = 1,
    jobs: Jobs = 2,
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="folder (default runs/<scenario>-mitigations)")] = None,
) -> None:
    """Run the scenario with no mitigation and with each overlay; one table and one figure."""
    from sim.campaign.mitigations import compare_mitigations, format_table, write

    overlays = overlay or sorted(dir_.glob("*.yaml"))
    with _bar("simulating") as bar:
        task = bar.add_task("", total=1.0)
        rows = compare_mitigations(scenario, overlays, set_ or [], replications, jobs,
                                   lambda f: bar.update(task, completed=f))
    folder = write(rows, out or Path("runs") / f"{scenario.stem}-mitigations")
    print(format_table(rows))
    from reports.campaign import mitigation_figure

    print(f"table: {folder / 'mitigations.md'}\nfigure: {mitigation_figure(folder / 'mitigations.json')}")


def validate_campaign(
    scenario: Path,
    simulate_cell: Annotated[bool, typer.Option("--simulate/--no-simulate", help="also run the scaled cell")] = True,
    demand_only: Annotated[bool, typer.Option("--demand-only/--full", help="one-token LLM calls (fast; the counts "
                                              "do not depend on decode)")] = True,
    cell_scale: Annotated[float, typer.Option(help="population.scale of the simulated cell (the same with --full)")]
    = 5e-5,
    set_: Sets = None,
    tolerance: Annotated[float, typer.Option(help="allowed relative error of a calibrated figure")] = 0.05,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="launch scenarios: recompute the calibrated "
                                            "parameters (several demand-only cells) and print them")] = False,
) -> None:
    """Campaign figures: published vs the scenario (expectation) vs the simulated, scaled-up cell.
    A scenario with `population.launch` also gets the days, the launch day hour by hour, and a
    calibrated / predicted label on every figure."""
    from sim.campaign.overlay import load_with_overlay

    sets = list(set_ or [])
    sc = load_with_overlay(scenario, None, sets)
    if sc.population is not None and sc.population.launch is not None:
        _validate_launch(scenario, sets, cell_scale, demand_only, calibrate, tolerance)
        return
    _validate_totals(scenario, sets, cell_scale, demand_only, simulate_cell, tolerance)


def _validate_launch(scenario: Path, sets: list[str], cell_scale: float, demand_only: bool, calibrate: bool,
                     tolerance: float) -> None:
    from sim.campaign import launch_check
    from sim.des import simulate

    if calibrate:
        from sim.campaign.launch import calibrate as fit

        with _bar("calibrating") as bar:
            task = bar.add_task("", total=1.0)
            rows = fit(scenario, sets, cell_scale, progress=lambda f: bar.update(task, completed=f))
        for r in rows:
            print("  ".join(f"{k} {v:.6g}" for k, v in r.items()))
        last = rows[-1]
        print(f"--set population.launch.broadcast.pool_users={last['pool_users']:.4g} "
              f"--set population.sessions_per_user_per_day={last['sessions_per_user_per_day']:.4g} "
              f"--set population.launch.first_session.try_share={last['try_share']:.4g}")
        return
    sc = launch_check.cell(scenario, sets, cell_scale, demand_only)
    p = sc.population
    assert p is not None
    with _bar(f"simulating {sc.name}") as bar:
        task = bar.add_task("", total=1.0)
        results = simulate(sc, progress=lambda f: bar.update(task, completed=f))
    print(f"{sc.name}: cell = {p.scale * sc.arrivals.scale:g} of the population, scaled back up by "
          f"{1 / (p.scale * sc.arrivals.scale):,.0f}" + ("; demand only (one-token LLM calls)" if demand_only else ""))
    text, ok = launch_check.report(sc, results, tolerance)
    print(text)
    if not ok:
        print("FAIL: a figure is outside its tolerance (marked '<- off')")
        raise typer.Exit(1)
    print("ok: every calibrated figure within its tolerance, every predicted one within 25%")


def _validate_totals(scenario: Path, sets: list[str], cell_scale: float, demand_only: bool, simulate_cell: bool,
                     tolerance: float) -> None:
    """The four campaign totals for a scenario with a DAU list (`population.campaign`)."""
    from sim.campaign.calibration import (
        comparison,
        demand_only_overrides,
        expected_totals,
        format_comparison,
        simulated_totals,
    )
    from sim.campaign.overlay import load_with_overlay

    if simulate_cell:
        sets = sets + [f"population.scale={cell_scale}"]  # the same cell with and without --full
    sc = load_with_overlay(scenario, None, sets)
    if demand_only and simulate_cell:
        sc = load_with_overlay(scenario, None, sets + demand_only_overrides(sc))
    sim = err = None
    if simulate_cell:
        from sim.des import simulate

        with _bar(f"simulating {sc.name}") as bar:
            task = bar.add_task("", total=1.0)
            results = simulate(sc, progress=lambda f: bar.update(task, completed=f))
        sim, err = simulated_totals(sc, results)
    rows = comparison(expected_totals(sc), sim, err)
    p = sc.population
    assert p is not None
    print(f"{sc.name}: cell = {p.scale * sc.arrivals.scale:g} of the population, scaled back up by "
          f"{1 / (p.scale * sc.arrivals.scale):,.0f}"
          + ("; demand only (one-token LLM calls)" if demand_only and simulate_cell else ""))
    print(format_comparison(rows))
    worst = max(abs(r.get("simulated_err", r["expected_err"])) for r in rows)
    if worst > tolerance:
        print(f"FAIL: a figure is off by {worst:.1%} (> {tolerance:.0%})")
        raise typer.Exit(1)
    print(f"ok: every figure within {tolerance:.0%}")


def metastability(
    run_dir: Path,
    scenario: Annotated[Path | None, typer.Option(help="the run's scenario: its demand curve dates the trigger")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    figure: Annotated[bool, typer.Option(help="write RUN_DIR/outage.png and metastability.json")] = True,
) -> None:
    """Metastability of a run folder: stuck after the trigger? time to recover, amplification."""
    from sim.campaign.metastability import analyse, format_analysis
    from sim.results import Results
    from sim.scenario import load_scenario

    sc = load_scenario(scenario) if scenario else None
    a = analyse(Results.read(run_dir), scenario=sc)
    print(json.dumps(a, indent=1) if as_json else format_analysis(a))
    if figure:
        from reports.campaign import outage_figure

        (run_dir / "metastability.json").write_text(json.dumps(a, indent=1) + "\n")
        print(f"figure: {outage_figure(run_dir, a, start_hour=sc.run.start_hour if sc else None)}")


def register(app: typer.Typer) -> None:
    explore = typer.Typer(no_args_is_help=True, help="Explore where a scenario fails.")
    explore.command("vulnerability")(vulnerability)
    app.add_typer(explore, name="explore")
    app.command("mitigations")(mitigations)
    app.command("validate-campaign")(validate_campaign)
    app.command("metastability")(metastability)
