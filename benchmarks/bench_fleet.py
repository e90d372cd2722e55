"""Benchmark: the fleet engine at full scale, against the SimPy engine (issue 11).

    .venv/bin/python benchmarks/bench_fleet.py peak [--reps 100] [--dt 0.5] [--minutes 120]   # Feb 8 14:00-16:00, full scale
    .venv/bin/python benchmarks/bench_fleet.py campaign [--dt 2] [--days 6] [--hours H]     # the campaign at full scale
    .venv/bin/python benchmarks/bench_fleet.py day [--dt 0.5] [--hours 24]       # one campaign day (Feb 8) at full scale
    .venv/bin/python benchmarks/bench_fleet.py speedup [--scale 16] [--hours 2]  # both engines, same scenario
    .venv/bin/python benchmarks/bench_fleet.py scales [--scales 1,4,16,64,full]  # outcome against cell scale

`--max-dt S` (peak, campaign, speedup, scales): the adaptive time step up to S seconds
(`sim.fleet.timestep`); `--repeats N`: run N times and give the range. Every figure is CPU
seconds of this process (`time.process_time()`), with `uptime`'s load average and the peak RSS;
a shortened run (`--minutes`, `--hours`) also gives CPU s per simulated hour and the figure
extrapolated to the full length (labelled so). Targets (issue 11): the six campaign days at full
scale in < 120 s with peak RSS < 4 GB; 100 replications of the Feb 8 peak at full scale in < 60 s.
Run under `nice`, on a quiet machine, and give the range over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.campaign import analyse  # noqa: E402
from sim.fleet import simulate_batch  # noqa: E402
from sim.fleet.fullscale import campaign_full, feb8_full, fleet_scale  # noqa: E402
from sim.rules.scaling import scale_scenario  # noqa: E402
from sim.scenario import Scenario, load_scenario  # noqa: E402

FEB8 = ROOT / "scenarios" / "feb8_outage.yaml"


def _load() -> str:
    """`uptime`'s load averages (1, 5, 15 min)."""
    out = subprocess.run(["uptime"], capture_output=True, text=True).stdout
    return "load average " + (out.split("load average:")[-1].strip() if "load average:" in out else
                              " ".join(f"{x:.2f}" for x in os.getloadavg()))


def _repeat(args: argparse.Namespace, once: Callable[[], tuple[float, str]]) -> None:
    """Run `once` (returns CPU s and a line) --repeats times; print each and the range."""
    cpus = []
    for k in range(args.repeats):
        cpu, line = once()
        cpus.append(cpu)
        print(f"repeat {k + 1}/{args.repeats}: {line}", flush=True)
    if args.repeats > 1:
        print(f"CPU s over {args.repeats} repeats: {min(cpus):.1f}-{max(cpus):.1f} (median {sorted(cpus)[len(cpus) // 2]:.1f})")


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def _clock(h: float | None) -> str:
    if h is None:
        return "-"
    return f"{int(12 + h // 3600) % 24:02d}:{int(h % 3600 // 60):02d}"


def _kpis(r, sc: Scenario) -> dict:  # type: ignore[no-untyped-def]
    a = analyse(r, scenario=sc)
    s = r.summary
    chat = s["classes"]["chat"]
    return {"commands": s["arrived"], "success": s["success_rate"], "goodput_frac": a["goodput_fraction"],
            "onset": a["onset_s"], "recovered": a["recovered_s"], "attempts_per_cmd": s["attempts_per_command"],
            "chat_e2e_p50": chat["e2e"]["p50"], "chat_e2e_p99": chat["e2e"]["p99"],
            "chat_ttft_p50": chat["ttft"]["p50"], "chat_ttft_p99": chat["ttft"]["p99"]}


def peak(args: argparse.Namespace) -> None:
    span_s = round(args.minutes * 60)
    sc = feb8_full(["run.start_hour=14", f"run.duration_s={span_s}", "faults=[]"])

    def once() -> tuple[float, str]:
        t = time.process_time()
        runs = simulate_batch(sc, replications=args.reps, dt=args.dt, max_dt=args.max_dt)
        cpu = time.process_time() - t
        succ = [r.summary["success_rate"] for r in runs]
        cmds = sum(r.summary["arrived"] for r in runs)
        steps = runs[0].meta.get("fleet_steps", round(span_s / runs[0].meta["fleet_dt_s"]))
        full = f", x{7200 / span_s:g} = {cpu * 7200 / span_s:.0f} CPU s for 14:00-16:00 (extrapolated)" if span_s != 7200 else ""
        return cpu, (f"Feb 8 14:00 + {args.minutes:g} min, full scale, {args.reps} replications, dt {args.dt} s"
                     f"{f' adaptive to {args.max_dt} s' if args.max_dt else ''}: {cmds:,.0f} commands, {steps} steps, "
                     f"{cpu:.1f} CPU s ({cpu / steps * 1e3:.1f} ms per step){full}; peak RSS {_rss_gb():.2f} GB; "
                     f"success {min(succ):.3f}-{max(succ):.3f}; {_load()}")

    _repeat(args, once)


def campaign(args: argparse.Namespace) -> None:
    days = args.days
    full_s = (days + 1) * 86400
    span_s = round(args.hours * 3600) if args.hours else full_s
    sc = campaign_full([f"run.duration_s={span_s}"])

    def once() -> tuple[float, str]:
        t = time.process_time()
        r = simulate_batch(sc, dt=args.dt, max_dt=args.max_dt)[0]
        cpu = time.process_time() - t
        steps = r.meta.get("fleet_steps", round(span_s / r.meta["fleet_dt_s"]))
        if span_s == full_s:
            _campaign_days(r, days, Path(args.out))
        full = f", {cpu * full_s / span_s:.0f} CPU s for the {days + 1} days (extrapolated)" if span_s != full_s else ""
        return cpu, (f"campaign at full scale, {span_s / 3600:g} h: {r.summary['arrived']:,.0f} commands, {steps} steps, "
                     f"{cpu:.1f} CPU s ({cpu / steps * 1e3:.1f} ms per step; {cpu / span_s * 3600:.1f} CPU s per "
                     f"simulated hour){full}; dt {r.meta['fleet_dt_s']} s"
                     f"{f' adaptive to {args.max_dt} s' if args.max_dt else ''}; peak RSS {_rss_gb():.2f} GB; {_load()}")

    _repeat(args, once)


def _campaign_days(r, days: int, out: Path) -> None:  # type: ignore[no-untyped-def]
    per_day = []
    spd = round(86400 / r.meta["interval_s"])
    for d in range(days + 1):
        sl = slice(d * spd, (d + 1) * spd)
        arr = sum(r.series[f"arrived:{c}"][sl].sum() for c in r.meta["classes"])
        good = sum(r.series[f"good:{c}"][sl].sum() for c in r.meta["classes"])
        per_day.append((d, arr, good / arr if arr else float("nan"), r.series["orders"][sl].sum()))
    r.write(out)
    print(f"results in {out}")
    print("| day | commands | good fraction | orders |")
    print("|---|---:|---:|---:|")
    for d, arr, g, o in per_day:
        print(f"| Feb {5 + d} | {arr:,.0f} | {g:.3f} | {o:,.0f} |")


def day(args: argparse.Namespace) -> None:
    """One campaign day at full scale: Feb 8 (70.8 M users, the campaign's busiest fleet) from
    00:00 for 24 h, its 14:20 session-cache fault included; x 7 days = the campaign's cost."""
    at = 8400 + 12 * 3600  # feb8_outage.yaml's fault, at_s from 12:00
    span_s = round(args.hours * 3600)
    fault = f"{{at_s: {at}, duration_s: 60, target: auth, kind: session_invalidation, magnitude: 0.9}}" if span_s > at + 60 else ""
    sc = feb8_full(["run.start_hour=0", f"run.duration_s={span_s}", f"faults=[{fault}]"])

    def once() -> tuple[float, str]:
        t = time.process_time()
        r = simulate_batch(sc, dt=args.dt, max_dt=args.max_dt)[0]
        cpu = time.process_time() - t
        steps = r.meta.get("fleet_steps", round(sc.run.duration_s / r.meta["fleet_dt_s"]))
        k = _kpis(r, sc)
        return cpu, (f"Feb 8 at full scale, 00:00 + {args.hours:g} h, dt {args.dt} s"
                     f"{f' adaptive to {args.max_dt} s' if args.max_dt else ''}: {k['commands']:,.0f} commands, "
                     f"{steps} steps, {cpu:.1f} CPU s ({cpu / steps * 1e3:.1f} ms per step), x7 days = "
                     f"{7 * cpu * 24 / args.hours:.0f} CPU s (extrapolated); success {k['success']:.3f}, goodput "
                     f"{100 * k['goodput_frac']:.1f}%, onset {_clock0(k['onset'])}, recovered {_clock0(k['recovered'])}, "
                     f"chat e2e p50 {k['chat_e2e_p50']:.2f} s; peak RSS {_rss_gb():.2f} GB; {_load()}")

    _repeat(args, once)


def _clock0(t: float | None) -> str:
    return "-" if t is None else f"{int(t // 3600) % 24:02d}:{int(t % 3600 // 60):02d}"


def speedup(args: argparse.Namespace) -> None:
    from sim.des import simulate

    sc = load_scenario(FEB8, ["run.start_hour=14", f"run.duration_s={round(args.hours * 3600)}", "faults=[]"])
    if args.scale != 1:
        sc = scale_scenario(sc, args.scale)
    print("| engine | scenario | commands | CPU s | commands per CPU s | success | chat e2e p50 | load |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    ratios = []
    for _ in range(args.repeats):
        t = time.process_time()
        d = simulate(sc)
        t_des = time.process_time() - t
        t = time.process_time()
        f = simulate_batch(sc, dt=args.dt, max_dt=args.max_dt)[0]
        t_fleet = time.process_time() - t
        for name, r, cpu in (("des", d, t_des), ("fleet", f, t_fleet)):
            s = r.summary
            print(f"| {name} | feb8 x{args.scale:g} 14:00 + {args.hours:g} h | {s['arrived']:,.0f} | {cpu:.1f} | "
                  f"{s['arrived'] / cpu:,.0f} | {s['success_rate']:.3f} | {s['classes']['chat']['e2e']['p50']:.2f} | "
                  f"{_load()} |", flush=True)
        ratios.append(t_des / t_fleet)
    print(f"speed-up (CPU), fleet over SimPy: {min(ratios):.1f}-{max(ratios):.1f}x over {args.repeats} repeats")


def scales(args: argparse.Namespace) -> None:
    from sim.des import simulate

    cell = load_scenario(FEB8)
    rows = []
    for tok in args.scales.split(","):
        factor = fleet_scale(cell) if tok == "full" else float(tok)
        sc = scale_scenario(cell, factor) if factor != 1 else cell
        for eng in args.engines.split(","):
            if eng == "des" and factor > args.des_max:
                continue
            t = time.process_time()
            r = simulate(sc) if eng == "des" else simulate_batch(sc, dt=args.dt, max_dt=args.max_dt)[0]
            cpu = time.process_time() - t
            k = _kpis(r, sc)
            rows.append((tok, eng, cpu, k))
            print(json.dumps({"scale": tok, "engine": eng, "cpu_s": round(cpu, 1), **k}), flush=True)
    print(f"\n{_load()}")
    print("| cell (x the shipped cell) | replicas | engine | commands | goodput % of offered | outage onset | "
          "recovered | attempts/command | chat e2e p50 / p99 s | CPU s |")
    print("|---|---:|---|---:|---:|---|---|---:|---|---:|")
    for tok, eng, cpu, k in rows:
        reps = round(fleet_scale(cell)) if tok == "full" else round(float(tok))
        print(f"| x{tok} | {reps:,} | {eng} | {k['commands']:,.0f} | {100 * k['goodput_frac']:.1f} | "
              f"{_clock(k['onset'])} | {_clock(k['recovered'])} | {k['attempts_per_cmd']:.2f} | "
              f"{k['chat_e2e_p50']:.2f} / {k['chat_e2e_p99']:.1f} | {cpu:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("peak")
    p.add_argument("--reps", type=int, default=100)
    p.add_argument("--dt", type=float, default=0.5)
    p.add_argument("--minutes", type=float, default=120)
    c = sub.add_parser("campaign")
    c.add_argument("--days", type=int, default=6)
    c.add_argument("--dt", type=float, default=2.0)
    c.add_argument("--out", default="runs/spring_festival_full")
    c.add_argument("--hours", type=float, default=None)
    dd = sub.add_parser("day")
    dd.add_argument("--dt", type=float, default=0.5)
    dd.add_argument("--hours", type=float, default=24)
    s = sub.add_parser("speedup")
    s.add_argument("--scale", type=float, default=16)
    s.add_argument("--dt", type=float, default=None)
    s.add_argument("--hours", type=float, default=2.0)
    k = sub.add_parser("scales")
    k.add_argument("--scales", default="1,4,16,64,full")
    k.add_argument("--engines", default="des,fleet")
    k.add_argument("--des-max", type=float, default=16)
    k.add_argument("--dt", type=float, default=None)
    for sp in (p, c, dd, s, k):
        sp.add_argument("--max-dt", type=float, default=None)
        sp.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    {"peak": peak, "campaign": campaign, "day": day, "speedup": speedup, "scales": scales}[args.what](args)


if __name__ == "__main__":
    main()
