"""`surge` subcommands for the campaign and its outages (registered by `sim.cli`):

    surge explore vulnerability SCENARIO   heatmap of where the system locks in
    surge mitigations SCENARIO             each overlay in scenarios/mitigations/ vs none
    surge validate-campaign SCENARIO       simulated (scaled up) vs published campaign totals (exit 99 if off)
    surge metastability RUN_DIR            stuck after the trigger? time to recover, amplification

Heavy imports (the engine, matplotlib) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sim.cli.options import SLO_BREACH, Jobs, Sets, floats, progress


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

    grid = Grid(floats(loads, "--loads"), floats(magnitudes, "--magnitudes"), floats(durations, "--durations"),
                replications, fault)
    with progress("sweeping") as tick:
        vm = explore_vulnerability(scenario, grid, set_ or [], jobs, tick)
    from reports.derived import write_vulnerability

    folder = out or Path("runs") / f"{vm.scenario}-vulnerability"
    path = write_vulnerability(vm, folder)
    print(format_map(vm))
    from reports.campaign import vulnerability_heatmap

    print(f"map: {path}\nheatmap: {vulnerability_heatmap(path)}")


def mitigations(
    scenario: Path,
    overlay: Annotated[list[Path] | None, typer.Option(help="overlay files (default: every *.yaml in --dir)")] = None,
    dir_: Annotated[Path | None, typer.Option("--dir", help="folder of overlays (default: mitigations/ next to the "
                                                           "scenario, else the shipped ones)")] = None,
    replications: Annotated[int, typer.Option(min=1)] = 1,
    jobs: Jobs = 2,
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="folder (default runs/<scenario>-mitigations)")] = None,
) -> None:
    """Run the scenario with no mitigation and with each overlay; one table and one figure."""
    from reports.derived import write_mitigations
    from sim.campaign.mitigations import compare_mitigations, format_table
    from sim.shipped import resolve, scenarios_dir

    scenario = resolve(scenario)
    if dir_ is None:
        dir_ = scenario.parent / "mitigations"
        dir_ = dir_ if dir_.is_dir() else scenarios_dir() / "mitigations"
    overlays = overlay or sorted(dir_.glob("*.yaml"))
    if not overlays:
        from sim.cli.options import UsageError

        raise UsageError(f"no mitigation overlays: '{dir_}' has no *.yaml files (give --dir or --overlay)")
    with progress("simulating") as tick:
        rows = compare_mitigations(scenario, overlays, set_ or [], replications, jobs, tick)
    folder = write_mitigations(rows, out or Path("runs") / f"{scenario.stem}-mitigations")
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

        with progress("calibrating") as tick:
            rows = fit(scenario, sets, cell_scale, progress=tick)
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
    with progress(f"simulating {sc.name}") as tick:
        results = simulate(sc, progress=tick)
    print(f"{sc.name}: cell = {p.scale * sc.arrivals.scale:g} of the population, scaled back up by "
          f"{1 / (p.scale * sc.arrivals.scale):,.0f}" + ("; demand only (one-token LLM calls)" if demand_only else ""))
    text, ok = launch_check.report(sc, results, tolerance)
    print(text)
    if not ok:
        print("FAIL: a figure is outside its tolerance (marked '<- off')")
        raise typer.Exit(SLO_BREACH)
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

        with progress(f"simulating {sc.name}") as tick:
            results = simulate(sc, progress=tick)
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
        raise typer.Exit(SLO_BREACH)
    print(f"ok: every figure within {tolerance:.0%}")


def metastability(
    run_dir: Path,
    scenario: Annotated[Path | None, typer.Option(help="the run's scenario: its demand curve dates the trigger")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the analysis as JSON")] = False,
    out: Annotated[Path | None, typer.Option(help="write metastability.json and outage.png into this folder "
                                                  "(nothing is written without it)")] = None,
) -> None:
    """Metastability of a run folder: stuck after the trigger? time to recover, amplification."""
    from sim.campaign.metastability import analyse, format_analysis
    from sim.results import Results, strict_json
    from sim.scenario import load_scenario

    sc = load_scenario(scenario) if scenario else None
    a = analyse(Results.read(run_dir), scenario=sc)
    print(strict_json(a, indent=1) if as_json else format_analysis(a))
    if out is not None:
        from reports.campaign import outage_figure
        from reports.derived import write_metastability

        print(f"analysis: {write_metastability(out, a)}")
        print(f"figure: {outage_figure(run_dir, a, out=out / 'outage.png')}")


def register(app: typer.Typer) -> None:
    explore = typer.Typer(no_args_is_help=True, help="Explore where a scenario fails.")
    explore.command("vulnerability")(vulnerability)
    app.add_typer(explore, name="explore")
    app.command("mitigations")(mitigations)
    app.command("validate-campaign")(validate_campaign)
    app.command("metastability")(metastability)
