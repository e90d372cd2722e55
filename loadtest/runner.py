"""`run_loadtest`: one load run from a scenario, end to end.

    out/scenario.yaml   the scenario as run (scaled, cut to the duration)
    out/plan.json       what every Locust process reads
    out/measured/       the measurement (results format, source "loadtest")
    out/simulated/      the simulator on the same scenario (source "des")
    out/report/         simulation and measurement overlaid (reports.compare_runs)
    out/differences.md  per-interval p50/p99, goodput and recovery: simulated vs measured
    out/*.log           stack and Locust logs
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from loadtest import procs
from loadtest.credentials import Credentials
from loadtest.live import LiveView
from loadtest.plan import Mode, Plan, prepare_scenario, write_scenario
from loadtest.safety import LoadTestError, check_host, preflight
from loadtest.scrape import Scraper
from sim.results import Results
from sim.shipped import resolve

MAX_DURATION_S = 24 * 3600.0


@dataclass
class LoadRun:
    """What a load run produced (folders) and its SLO verdicts."""

    out: Path
    measured: Results
    simulated: Results | None = None
    notes: list[str] = field(default_factory=list)
    report: Path | None = None

    @property
    def slo_failures(self) -> list[dict[str, Any]]:
        return [v for v in self.measured.summary.get("slos", []) if not v["pass"]]


@dataclass
class Options:
    scenario: Path
    scale: float = 1.0
    duration_s: float = 60.0
    out: Path = Path("runs/loadtest")
    host: str | None = None
    start_stack: bool = False
    workers: int = 0
    allow_remote: bool = False
    mode: Mode = "open"
    users: int = 10
    spawn_rate: float = 10.0
    sets: list[str] = field(default_factory=list)
    interval_s: float | None = None
    max_requests: int = 1_000_000
    max_in_flight: int = 2000
    model: str | None = None  # the model named in chat requests; None = ask the server (/v1/models)
    stack_options: dict[str, Any] | None = None  # StackOptions fields for --start-stack
    faults: bool = True
    simulate: bool = True
    report: bool = True
    live: bool | None = None  # the live display (None: when stderr is a terminal)
    locust_args: list[str] = field(default_factory=list)  # passed to every Locust process as given
    stack_port: int | None = None  # --start-stack: the stack's port (None: a free one)
    master_port: int | None = None  # --workers: the Locust master's port (None: a free one)
    endpoint: Literal["chat", "completions"] = "chat"  # one-LLM-stage classes: chat or text completions
    ignore_eos: bool = True
    api_key: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    plugins: list[str] = field(default_factory=list)
    credentials: Credentials | None = None  # the target's (None: new ones for --start-stack, else the environment's)
    stack_cpus: tuple[int, ...] | None = None  # --start-stack: pin the stack to these cores
    locust_cpus: tuple[int, ...] | None = None  # pin every Locust process to these cores


def run_loadtest(opt: Options) -> LoadRun:
    """Run the load test the options describe; raises `LoadTestError` for refusals and failures."""
    host = _checked_target(opt)
    out = opt.out.resolve()
    data, sc, notes = prepare_scenario(opt.scenario, opt.scale, opt.duration_s, opt.sets, opt.interval_s)
    scen_file = write_scenario(data, out, resolve(opt.scenario).parent)
    # a stack this run starts gets fresh secrets; one given by --host, the environment's
    creds = opt.credentials or (Credentials.for_new_stack() if opt.start_stack else Credentials.from_env())
    if opt.start_stack:  # a started stack begins with no orders and full stock, whatever ran here before
        for old in out.glob("orders.db*"):
            old.unlink()
    stack = (procs.StackProcess(scen_file, out, creds, port=opt.stack_port, options=opt.stack_options,
                                cpus=opt.stack_cpus) if opt.start_stack else None)
    try:
        if stack is not None:
            host = stack.start().url
        assert host is not None
        scraper, ledger = _drive(opt, sc, scen_file, host, creds, notes)
    finally:
        if stack is not None:
            stack.stop()
    run = _measured_run(opt, out, scraper, ledger, notes)
    if opt.simulate:
        run.simulated = simulate_same(sc, out / "simulated")
    if opt.report:
        run.report = write_reports(run)
    return run


def _checked_target(opt: Options) -> str | None:
    """The options' bounds and the `--host` (loopback unless allowed); None when a stack is started."""
    if not 0 < opt.duration_s <= MAX_DURATION_S:
        raise LoadTestError(f"'--duration' must be in (0, {MAX_DURATION_S:g}] seconds (got {opt.duration_s:g})")
    if not opt.start_stack and not opt.host:
        raise LoadTestError("give '--host URL' or '--start-stack'")
    if opt.workers < 0 or opt.workers > 64:
        raise LoadTestError(f"'--workers' must be in [0, 64] (got {opt.workers})")
    for p in opt.plugins:
        if not Path(p).is_file():
            raise LoadTestError(f"'--plugin' {p!r}: no such file")
    return check_host(opt.host, opt.allow_remote) if opt.host and not opt.start_stack else None


def _drive(opt: Options, sc: Any, scen_file: Path, host: str, creds: Credentials,
           notes: list[str]) -> tuple[Scraper, dict[str, Any] | None]:
    """Preflight the target, run Locust with the live view and the /metrics scraper, then read the
    stack's ledger (order-placing scenarios): the scraper and the ledger."""
    served = preflight(host)  # TargetError (exit 3) before any load when the host is not there
    plan = Plan(str(scen_file), host, str(opt.out.resolve()), mode=opt.mode, duration_s=sc.run.duration_s,
                workers=opt.workers, max_in_flight=opt.max_in_flight, max_requests=opt.max_requests,
                users=opt.users, spawn_rate=opt.spawn_rate, apply_faults=opt.faults,
                model=opt.model or served or "default", max_context=_max_context(sc), endpoint=opt.endpoint,
                ignore_eos=opt.ignore_eos, api_key=opt.api_key, headers=opt.headers,
                plugins=[str(Path(p).resolve()) for p in opt.plugins])
    out = opt.out.resolve()
    plan_file = plan.write(out)
    t = time.monotonic()
    scraper = Scraper(host, max_num_seqs=sc.services.llm.max_num_seqs if sc.services.llm else None)

    def tick() -> None:
        view.tick()
        scraper.tick()

    with LiveView(out, opt.live) as view:
        code = procs.run_locust(plan_file, host, opt.workers, out, sc.run.duration_s + plan.lead_s + 30,
                                on_tick=tick, extra_args=opt.locust_args, master_port=opt.master_port,
                                credentials=creds, cpus=opt.locust_cpus)
    notes.append(f"locust exited with {code} after {time.monotonic() - t:.1f} s")
    ledger = fetch_ledger(host, creds.admin_token) if _places_orders(sc) and creds.admin_token else None
    return scraper, ledger


def _measured_run(opt: Options, out: Path, scraper: Scraper, ledger: dict[str, Any] | None,
                  notes: list[str]) -> LoadRun:
    """The measured results Locust wrote, with the ledger and the server side, and the notes on
    what the measurement misses."""
    measured_dir = out / "measured"
    if not (measured_dir / "run.json").is_file():
        raise LoadTestError(f"Locust wrote no results; see {out}/locust-*.log")
    measured = Results.read(measured_dir)
    if ledger is not None:  # the stack's own account of the money and stock, at the end
        measured.meta["ledger"] = ledger
        measured.write(measured_dir)
    run = LoadRun(out, _with_server_side(measured, scraper, measured_dir), notes=notes)
    finals = run.measured.meta.get("worker_finals", [])
    if len(finals) < max(1, opt.workers):
        notes.append(f"warning: only processes {finals} of {max(1, opt.workers)} sent their last counts; "
                     "the measurement misses the rest")
    tot = run.measured.meta.get("totals", {})
    notes += token_notes(tot)
    if tot.get("dropped"):
        notes.append(f"{tot['dropped']:.0f} starts were dropped: --max-in-flight was reached (raise it, or --workers)")
    return run


def _places_orders(sc: Any) -> bool:
    return any(c.places_order for c in sc.workload.classes.values())


def fetch_ledger(host: str, token: str) -> dict[str, Any] | None:
    """The reference stack's ledger (`GET /admin/ledger`: payments, duplicates prevented,
    refunds, stock), or None from a server without one."""
    import json
    import urllib.request

    from loadtest.safety import fetch

    req = urllib.request.Request(host.rstrip("/") + "/admin/ledger", headers={"Authorization": f"Bearer {token}"})
    try:
        status, body, _ = fetch(req, 10.0)
        return dict(json.loads(body)) if status == 200 else None
    except (OSError, ValueError):
        return None


def _with_server_side(measured: Results, scraper: Scraper, folder: Path) -> Results:
    """The measured results with the server's own gauges and counters (`/metrics`) added."""
    m = measured.meta
    added = scraper.series(float(m.get("t0_unix") or 0.0), float(m["interval_s"]), int(m["n_intervals"]))
    if added:
        measured.series.update(added)
        measured.meta["server_series"] = sorted(added)
        measured.write(folder)
    return measured


def token_notes(totals: dict[str, float], tolerance: float = 0.10) -> list[str]:
    """Warnings when the server counted other token numbers than the scenario asked for (its
    tokenizer splits the prompt text differently, or it stopped early: pass --ignore-eos)."""
    out = []
    for kind in ("prompt", "output"):
        asked, said = totals.get(f"{kind}_tokens_asked", 0.0), totals.get(f"{kind}_tokens_reported", 0.0)
        if asked and abs(said / asked - 1) > tolerance:
            out.append(f"warning: the server counted {said / asked:.2f}x the {kind} tokens the scenario asked for "
                       f"({said:,.0f} of {asked:,.0f}); its latencies are for those lengths")
    return out


def _max_context(sc: Any) -> int:
    llm = sc.services.llm
    if llm is not None and llm.backend.type == "local":
        return int(llm.backend.model.max_context)
    return 1 << 20


def simulate_same(sc: Any, folder: Path) -> Results:
    """The SimPy engine on the scenario the load test ran, with recovery times in its meta."""
    from loadtest.recovery import recovery
    from sim.des import simulate

    res = simulate(sc)
    res.meta["recovery"] = recovery(res)
    res.write(folder)
    return res


def write_reports(run: LoadRun) -> Path:
    """The measured run's own report, the overlay with the simulation and the differences."""
    import reports
    from reports.derived import write_differences

    reports.render_report(run.out / "measured")
    if run.simulated is None:
        return run.out / "measured"
    write_differences(run.simulated, run.measured, run.out)
    return Path(reports.compare_runs([run.out / "simulated", run.out / "measured"], run.out / "report",
                                     labels=["simulation", "measurement"]))
