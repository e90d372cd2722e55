"""`surge loadtest`: registered on the `surge` app by `sim.cli`. Light at import: Locust runs
only in subprocesses, the runner is imported inside the command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from sim.cli.options import SLO_BREACH, Sets, UsageError, need_stack, parse_duration


def register(app: typer.Typer) -> None:
    app.command("loadtest")(loadtest)


def loadtest(
    scenario: Path,
    scale: Annotated[float, typer.Option(help="multiply the arrival rate and fleet capacities")] = 1.0,
    duration: Annotated[str, typer.Option(help="how long the load runs (90, 20s, 5m, 1h30m); it stops by itself")] = "60s",
    start_stack: Annotated[bool, typer.Option(help="start the reference stack on loopback")] = False,
    workers: Annotated[int, typer.Option(help="Locust worker processes (0 = one local process)")] = 0,
    host: Annotated[str | None, typer.Option(help="base URL of the stack or OpenAI-compatible server")] = None,
    out: Annotated[Path | None, typer.Option(help="run folder (default runs/loadtest-<scenario>)")] = None,
    allow_remote: Annotated[bool, typer.Option(help="allow a host outside loopback")] = False,
    closed: Annotated[bool, typer.Option(help="closed model: --users with --spawn-rate instead of arrivals")] = False,
    users: Annotated[int, typer.Option(min=1, max=100_000, help="closed model: users")] = 10,
    spawn_rate: Annotated[float, typer.Option(help="closed model: users started per second")] = 10.0,
    set_: Sets = None,
    interval: Annotated[float | None, typer.Option(help="results interval, seconds (default run.interval_s)")] = None,
    max_requests: Annotated[int, typer.Option(min=1, help="per process: stop sending after this many")] = 1_000_000,
    max_in_flight: Annotated[int, typer.Option(min=1, help="per process: starts beyond this are dropped")] = 2000,
    model: Annotated[str | None, typer.Option(help="model named in chat requests (default: the server's first "
                                                 "in /v1/models)")] = None,
    stack_options: Annotated[str | None, typer.Option(help="JSON of StackOptions fields for --start-stack, "
                                                          "e.g. '{\"torch_threads\": 1}'")] = None,
    faults: Annotated[bool, typer.Option(help="apply the scenario's faults")] = True,
    simulate: Annotated[bool, typer.Option(help="also simulate the same scenario and compare")] = True,
    fail_on_slo: Annotated[bool, typer.Option(help=f"exit {SLO_BREACH} when a scenario SLO is breached")] = True,
    stack_port: Annotated[int | None, typer.Option(min=1, max=65535, help="--start-stack: the stack's port "
                                                   "(default: a free one)")] = None,
    master_port: Annotated[int | None, typer.Option(min=1, max=65535, help="--workers: the Locust master's port "
                                                    "(default: a free one)")] = None,
    locust_args: Annotated[str | None, typer.Option(help="extra arguments for every Locust process, as one string "
                                                    "(e.g. '--loglevel INFO')")] = None,
    live: Annotated[bool | None, typer.Option("--live/--no-live", help="the live display (default: when stderr "
                                              "is a terminal)")] = None,
    endpoint: Annotated[str, typer.Option(help="one-LLM-stage classes as 'chat' (/v1/chat/completions) or "
                                          "'completions' (/v1/completions)")] = "chat",
    ignore_eos: Annotated[bool, typer.Option(help="ask for exactly max_tokens (ignore_eos, min_tokens: vLLM, "
                                             "SGLang, surge); --no-ignore-eos for servers that refuse them")] = True,
    api_key: Annotated[str | None, typer.Option(envvar="SURGE_API_KEY", help="bearer token for an "
                                                "OpenAI-compatible server (env SURGE_API_KEY)")] = None,
    header: Annotated[list[str] | None, typer.Option(help="extra request header 'Name: value' (repeatable)")] = None,
    plugin: Annotated[list[Path] | None, typer.Option(help="Python file with your own command classes "
                                                      "(see loadtest/plugins.py; repeatable)")] = None,
) -> None:
    """Load-test a stack with the scenario's workload (Locust), compare with the simulator, gate on SLOs."""
    need_stack("loadtest")
    from loadtest.runner import Options, run_loadtest
    from loadtest.safety import check_host, preflight

    duration_s = parse_duration(duration)
    opt = Options(scenario, scale=scale, duration_s=duration_s, out=out or Path("runs") / f"loadtest-{scenario.stem}",
                  host=host, start_stack=start_stack, workers=workers, allow_remote=allow_remote,
                  mode="closed" if closed else "open", users=users, spawn_rate=spawn_rate, sets=set_ or [],
                  interval_s=interval, max_requests=max_requests, max_in_flight=max_in_flight, model=model,
                  stack_options=_options(stack_options), faults=faults, simulate=simulate, live=live,
                  locust_args=shlex.split(locust_args or ""), stack_port=stack_port, master_port=master_port,
                  endpoint=_endpoint(endpoint), ignore_eos=ignore_eos, api_key=api_key, headers=_headers(header or []), plugins=[str(p) for p in plugin or []])
    if host and not start_stack:
        preflight(check_host(host, allow_remote))  # refuse, or find the target missing, before anything runs
    where = "a reference stack on loopback" if start_stack else host
    print(f"load test: {scenario} at scale {scale:g} for {duration_s:g} s against {where} "
          f"({f'Locust master + {workers} workers' if workers else 'one Locust process'}); logs in {opt.out}/",
          flush=True)
    from loadtest.procs import stopped_by_sigterm

    with stopped_by_sigterm():  # SIGTERM stops a stack and Locust it started on the way out
        run = run_loadtest(opt)
    _print(run)
    if fail_on_slo and run.slo_failures:
        raise typer.Exit(SLO_BREACH)


def _endpoint(value: str) -> Literal["chat", "completions"]:
    if value == "chat":
        return "chat"
    if value == "completions":
        return "completions"
    raise UsageError(f"'--endpoint' must be chat or completions (got {value!r})")


def _headers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"'--header' must look like 'Name: value' (got {item!r})")
        out[name.strip()] = value.strip()
    return out


def _options(text: str | None) -> dict[str, Any] | None:
    """--stack-options, checked here so that a mistake is one line before anything starts."""
    if not text:
        return None
    from loadtest.stack.__main__ import stack_options

    stack_options(text, None, "--stack-options")  # raises ScenarioError naming what is wrong
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
