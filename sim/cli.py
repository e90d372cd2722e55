"""The `surge` command: the front door that wires scenario, engines, load test and reports.

`reports` and `loadtest` are imported inside the subcommands that need them, so `import sim`
stays light. A user's mistake (`SurgeError`) prints one line `Type: message` and exits 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from sim.errors import SurgeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="surge: simulate and load-test AI agent stacks under campaign-scale load.")
stack_app = typer.Typer(no_args_is_help=True, help="The reference agent stack.")
app.add_typer(stack_app, name="stack")

Sets = Annotated[list[str] | None, typer.Option("--set", help="override a field: path.to.field=value")]


def main() -> None:
    try:
        app()
    except SurgeError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(2)


@app.command()
def validate(scenario: Path, set_: Sets = None) -> None:
    """Check a scenario file; print a one-line verdict."""
    from sim.scenario import load_scenario

    sc = load_scenario(scenario, set_ or [])
    print(f"ok: {scenario} ({sc.name}: {len(sc.workload.classes)} classes, {len(sc.services.names())} services, "
          f"{len(sc.faults)} faults)")


@app.command()
def schema() -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    from sim.scenario import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command()
def run(
    scenario: Path,
    set_: Sets = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/<scenario>)")] = None,
    seed: Annotated[int | None, typer.Option(help="override run.seed")] = None,
    replications: Annotated[int, typer.Option(min=1, max=10_000)] = 1,
    jobs: Annotated[int, typer.Option(min=1, help="processes for replications")] = 2,
    report: Annotated[bool, typer.Option(help="write the HTML/Markdown report")] = True,
    fail_on_slo: Annotated[bool, typer.Option(help="exit 1 when an SLO is missed")] = False,
) -> None:
    """Simulate a scenario with the SimPy engine and write a run folder (and its report)."""
    from sim.runner import run_replications, run_single
    from sim.scenario import load_scenario

    sc = load_scenario(scenario, set_ or [], seed=seed)
    folder = out or Path("runs") / sc.name
    with _progress(f"simulating {sc.name}") as tick:
        if replications == 1:
            results = run_single(sc, folder, tick)
            _print_summary(results)
            _metastability(results, sc, folder)
        else:
            results = run_replications(sc, folder, replications, jobs, tick)
            _print_summary(json.loads((folder / "replications.json").read_text()))
    if report:
        _report(folder)
    print(f"results: {folder}")
    if fail_on_slo and not all(r["pass"] for r in results.summary["slos"]):
        raise typer.Exit(1)


@app.command("report")
def report_cmd(run_dir: Path, out: Annotated[Path | None, typer.Option()] = None) -> None:
    """Render report.html, report.md and summary.json for a run (or replications) folder."""
    _report(run_dir, out)


@app.command()
def compare(run_dirs: list[Path], out: Annotated[Path, typer.Option()] = Path("runs/compare")) -> None:
    """Overlay runs: the same figures, a KPI table with differences (paired CIs on shared seeds)."""
    import reports

    path = reports.compare_runs(run_dirs, out)
    print(f"comparison: {path}")


@app.command()
def check(
    run_dir: Path,
    baseline: Annotated[Path, typer.Option(help="baseline KPIs with tolerances (YAML/JSON)")],
    write_baseline: Annotated[bool, typer.Option(help="write the baseline from this run instead")] = False,
) -> None:
    """CI gate: compare a run's KPIs with a baseline; exit 1 on a regression."""
    import reports

    if write_baseline:
        reports.write_baseline(run_dir, baseline)
        print(f"baseline written: {baseline}")
        return
    table, ok = reports.check_run(run_dir, baseline)
    print(table)
    if not ok:
        raise typer.Exit(1)


@stack_app.command("serve")
def stack_serve(
    scenario: Annotated[Path | None, typer.Option(help="configure the stack from a scenario")] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    scale: Annotated[float, typer.Option(help="scale the scenario's capacities")] = 1.0,
    set_: Sets = None,
) -> None:
    """Serve the reference agent stack (FastAPI on uvicorn) on loopback."""
    from loadtest.stack.__main__ import main as stack_main

    args = ["--host", host, "--port", str(port), "--scale", str(scale)]
    args += ["--scenario", str(scenario)] if scenario else []
    for item in set_ or []:
        args += ["--set", item]
    raise typer.Exit(stack_main(args))


def _print_summary(results) -> None:  # type: ignore[no-untyped-def]
    """A run's Results, or a replications summary (mean and 95% CI per KPI)."""
    from reports.terminal import print_summary

    print_summary(results)


def _metastability(results, sc, folder: Path) -> None:  # type: ignore[no-untyped-def]
    """Write metastability.json (onset, recovery, amplification); say it when there was an outage."""
    from sim.campaign import analyse, format_analysis

    a = analyse(results, scenario=sc)
    (folder / "metastability.json").write_text(json.dumps(a, indent=1, default=str) + "\n")
    if a.get("onset_s") is not None:
        print(format_analysis(a))


def _report(folder: Path, out: Path | None = None) -> None:
    import reports

    path = reports.render_report(folder, out)
    print(f"report: {path}")


class _progress:
    """A rich progress bar on stderr (quiet when not a terminal, e.g. in CI)."""

    def __init__(self, label: str) -> None:
        self.label = label

    def __enter__(self):  # type: ignore[no-untyped-def]
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                             TimeElapsedColumn(), transient=True, disable=not sys.stderr.isatty())
        self._bar.__enter__()
        task = self._bar.add_task(self.label, total=1.0)
        return lambda frac: self._bar.update(task, completed=frac)

    def __exit__(self, *exc: object) -> None:
        self._bar.__exit__(None, None, None)


def _register_extras() -> None:
    from sim.cli_extras import register_all

    register_all(app)


_register_extras()
