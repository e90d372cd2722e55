"""Benchmark: the fleet engine at full scale, against the SimPy engine (issue 11).

    .venv/bin/python benchmarks/bench_fleet.py peak [--reps 100] [--dt 0.5]      # Feb 8 14:00-16:00, full scale
    .venv/bin/python benchmarks/bench_fleet.py campaign [--dt 2] [--days 6]       # the campaign at full scale
    .venv/bin/python benchmarks/bench_fleet.py speedup [--scale 16] [--hours 2]  # both engines, same scenario
    .venv/bin/python benchmarks/bench_fleet.py scales [--scales 1,4,16,64,full]  # outcome against cell scale

Every figure is CPU seconds of this process (`time.process_time()`), with the load average and
the peak RSS; targets (issue 11): the six campaign days at full scale in < 120 s with peak RSS
< 4 GB; 100 replications of the Feb 8 peak at full scale in < 60 s. Run under `nice`, on a quiet
machine, and give the range over repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
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
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


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
    sc = feb8_full(["run.start_hour=14", "run.duration_s=7200", "faults=[]"])
    t = time.process_time()
    runs = simulate_batch(sc, replications=args.reps, dt=args.dt)
    cpu = time.process_time() - t
    succ = [r.summary["success_rate"] for r in runs]
    cmds = sum(r.summary["arrived"] for r in runs)
    print("| benchmark | replications | commands | CPU s | peak RSS GB | success rate (min-max) | load |")
    print("|---|---:|---:|---:|---:|---|---|")
    print(f"| Feb 8 14:00-16:00, full scale (dt {runs[0].meta['fleet_dt_s']} s) | {args.reps} | {cmds:,.0f} | "
          f"{cpu:.1f} | {_rss_gb():.2f} | {min(succ):.3f}-{max(succ):.3f} | {_load()} |")


def campaign(args: argparse.Namespace) -> None:
    days = args.days
    sc = campaign_full([f"run.duration_s={(days + 1) * 86400}"])
    t = time.process_time()
    r = simulate_batch(sc, dt=args.dt)[0]
    cpu = time.process_time() - t
    s = r.summary
    per_day = []
    spd = round(86400 / r.meta["interval_s"])
    for d in range(days + 1):
        sl = slice(d * spd, (d + 1) * spd)
        arr = sum(r.series[f"arrived:{c}"][sl].sum() for c in r.meta["classes"])
        good = sum(r.series[f"good:{c}"][sl].sum() for c in r.meta["classes"])
        per_day.append((d, arr, good / arr if arr else float("nan"), r.series["orders"][sl].sum()))
    out = Path(args.out)
    r.write(out)
    print(f"campaign at full scale: {s['arrived']:,.0f} commands in {cpu:.1f} CPU s (dt {r.meta['fleet_dt_s']} s), "
          f"peak RSS {_rss_gb():.2f} GB, {_load()}; results in {out}")
    print("| day | commands | good fraction | orders |")
    print("|---|---:|---:|---:|")
    for d, arr, g, o in per_day:
        print(f"| Feb {5 + d} | {arr:,.0f} | {g:.3f} | {o:,.0f} |")


def speedup(args: argparse.Namespace) -> None:
    from sim.des import simulate

    sc = load_scenario(FEB8, ["run.start_hour=14", f"run.duration_s={round(args.hours * 3600)}", "faults=[]"])
    if args.scale != 1:
        sc = scale_scenario(sc, args.scale)
    t = time.process_time()
    d = simulate(sc)
    t_des = time.process_time() - t
    t = time.process_time()
    f = simulate_batch(sc, dt=args.dt)[0]
    t_fleet = time.process_time() - t
    print("| engine | scenario | commands | CPU s | commands per CPU s | success | chat e2e p50 | load |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name, r, cpu in (("des", d, t_des), ("fleet", f, t_fleet)):
        s = r.summary
        print(f"| {name} | feb8 x{args.scale:g} 14:00 + {args.hours:g} h | {s['arrived']:,.0f} | {cpu:.1f} | "
              f"{s['arrived'] / cpu:,.0f} | {s['success_rate']:.3f} | {s['classes']['chat']['e2e']['p50']:.2f} | {_load()} |")
    print(f"speed-up (CPU): {t_des / t_fleet:.1f}x")


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
            r = simulate(sc) if eng == "des" else simulate_batch(sc, dt=args.dt)[0]
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
    c = sub.add_parser("campaign")
    c.add_argument("--days", type=int, default=6)
    c.add_argument("--dt", type=float, default=2.0)
    c.add_argument("--out", default="runs/spring_festival_full")
    s = sub.add_parser("speedup")
    s.add_argument("--scale", type=float, default=16)
    s.add_argument("--dt", type=float, default=None)
    s.add_argument("--hours", type=float, default=2.0)
    k = sub.add_parser("scales")
    k.add_argument("--scales", default="1,4,16,64,full")
    k.add_argument("--engines", default="des,fleet")
    k.add_argument("--des-max", type=float, default=16)
    k.add_argument("--dt", type=float, default=None)
    args = ap.parse_args()
    {"peak": peak, "campaign": campaign, "speedup": speedup, "scales": scales}[args.what](args)


if __name__ == "__main__":
    main()
