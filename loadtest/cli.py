"""`surge loadtest`: registered on the `surge` app by `sim.cli_extras`. Light at import: Locust
runs only in subprocesses, the runner is imported inside the command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest)


def loadtest(
    scenario: Path,
    scale: Annotated[float, typer.Option(help="multiply the arrival rate and fleet capacities")] = 1.0,
    duration: Annotated[float, typer.Option(help="seconds of load (the run stops by itself)")] = 60.0,
    start_stack: Annotated[bool, typer.Option(help="start the reference stack on loopback")] = False,
    workers: Annotated[int, typer.Option(help="Locust worker processes (0 = one local process)")] = 0,
    host: Annotated[str | None, typer.Option(help="base URL of the stack or OpenAI-compatible server")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/loadtest-<scenario>)")] = None,
    allow_remote: Annotated[bool, typer.Option(help="allow a host outside loopback")] = False,
    closed: Annotated[bool, typer.Option(help="closed model: --users with --spawn-rate instead of arrivals")] = False,
    users: Annotated[int, typer.Option(min=1, max=100_000, help="closed model: users")] = 10,
    spawn_rate: Annotated[float, typer.Option(help="closed model: users started per second")] = 10.0,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a field: path.to.field=value")] = None,
    interval: Annotated[float | None, typer.Option(help="results interval, seconds (default run.interval_s)")] = None,
    max_requests: Annotated[int, typer.Option(min=1, help="per process: stop sending after this many")] = 1_000_000,
    max_in_flight: Annotated[int, typer.Option(min=1, help="per process: starts beyond this are dropped")] = 2000,
    model: Annotated[str | None, typer.Option(help="model named in chat requests (default: the server's first "
                                                 "in /v1/models)")] = None,
    stack_options: Annotated[str | None, typer.Option(help="JSON of StackOptions fields for --start-stack, "
                                                          "e.g. '{\"torch_threads\": 1}'")] = None,
    faults: Annotated[bool, typer.Option(help="apply the scenario's faults")] = True,
    simulate: Annotated[bool, typer.Option(help="also simulate the same scenario and compare")] = True,
    fail_on_slo: Annotated[bool, typer.Option(help="exit 1 when a scenario SLO is breached")] = True,
) -> None:
    """Load-test a stack with the scenario's workload (Locust), compare with the simulator, gate on SLOs."""
    from loadtest.runner import Options, run_loadtest
    from loadtest.safety import check_host

    opt = Options(scenario, scale=scale, duration_s=duration, out=out or Path("runs") / f"loadtest-{scenario.stem}",
                  host=host, start_stack=start_stack, workers=workers, allow_remote=allow_remote,
                  mode="closed" if closed else "open", users=users, spawn_rate=spawn_rate, sets=set_ or [],
                  interval_s=interval, max_requests=max_requests, max_in_flight=max_in_flight, model=model,
                  stack_options=_options(stack_options), faults=faults, simulate=simulate)
    if host and not start_stack:
        check_host(host, allow_remote)  # refuse before saying anything runs
    where = "a reference stack on loopback" if start_stack else host
    print(f"load test: {scenario} at scale {scale:g} for {duration:g} s against {where} "
          f"({f'Locust master + {workers} workers' if workers else 'one Locust process'}); logs in {opt.out}/",
          flush=True)
    run = run_loadtest(opt)
    _print(run)
    if fail_on_slo and run.slo_failures:
        raise typer.Exit(1)


def _options(text: str | None) -> dict[str, Any] | None:
    """--stack-options, checked here so that a mistake is one line before anything starts."""
    if not text:
        return None
    from loadtest.stack.__main__ import stack_options

    stack_options(text, None)  # raises ScenarioError naming what is wrong
    return dict(json.loads(text))


def _print(run) -> None:  # type: ignore[no-untyped-def]
    from reports.terminal import print_summary

    for n in run.notes:
        print(f"note: {n}")
    print_summary(run.measured, title="measured (Locust)")
    if run.simulated is not None:
        print_summary(run.simulated, title="simulated (same scenario)")
    tot = run.measured.meta.get("totals", {})
    print(f"dispatched {tot.get('dispatched', 0):.0f}, dropped {tot.get('dropped', 0):.0f}, "
          f"faults applied {run.measured.meta.get('faults_applied', 0)}")
    for r in run.measured.meta.get("recovery", []):
        when = f"{r['recovery_s']:.1f} s" if r["recovered"] else "not recovered"
        print(f"recovery after {r['fault_kind']} on {r['target']} (ended {r['end_s']:.0f} s): {when}")
    if run.report:
        print(f"report: {run.report}")
    print(f"results: {run.out}")
    for v in run.slo_failures:
        print(f"SLO breached: {v['class']} {v['slo']} target {v['target']} actual {v['actual']}")
