"""Benchmark: the SimPy engine's speed (issues 2 and 9).

(a) An M/M/c queue (c = 4, rho = 0.8) run through surge's engine (`sim.des.simulate`, the whole
    scenario path: arrivals, client, stack, pool, recorder) against a hand-written raw SimPy
    M/M/c (`simpy.Resource` and one timeout per customer, inter-arrival and service times
    pre-drawn with numpy like the engine does), in the same process, the same number of
    customers. Target: the engine keeps >= 70% of raw SimPy's customers per second.
(b) The default agent mix (scenarios/smoke.yaml: chat plus the multi-stage help_me_buy, with
    auth, gateway, tools and a 4-replica LLM fleet), run longer with `--set`: commands
    simulated per CPU second on one core. Target: >= 10,000.
(c) The Feb 8 outage (scenarios/feb8_outage.yaml, 12:00 to 01:00: overload, retries, a login
    storm) scaled x1 and x16 (`sim.rules.scaling.scale_scenario`: the population's arrival
    rate and every capacity, as the load test's `--scale` does): commands per CPU second.
    Targets: >= 8,000 at x1, and x16 within 20% of x1 (the cost of a command does not grow
    with the size of the system). `--feb8-hours` cuts the window for quick runs (faults after
    it are left out); the targets are stated for the full 13 hours.

Every measurement runs in a fresh process (one does not inherit another's heap) and is
repeated; the tables give the median and the range. Times are CPU seconds of that process
(`time.process_time()`): on a shared machine wall time measures the neighbours, and the load
average (printed with each figure) says how shared it was. `--baseline DIR` runs the same
measurements, interleaved, on another checkout's code (e.g. `git worktree add /tmp/base main`),
for before/after figures taken side by side.

    .venv/bin/python benchmarks/bench_engine.py [--customers 200000] [--repeat 5] [--agent-duration 7200]
        [--feb8-hours 13] [--feb8-repeat 3] [--baseline DIR] [--only mmc,agent,feb8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

C, MU, RHO = 4, 1.0, 0.8
LAM = RHO * C * MU
RATIO_TARGET = 0.70
AGENT_TARGET = 10_000
FEB8_TARGET = 8_000
FEB8_SCALE_TARGET = 0.80  # x16 rate / x1 rate
FEB8_SCALES = (1, 16)


# -- measurements (run in a worker process, on the code under `--code`) --------------------------
def raw_simpy_mmc(customers: int, seed: int) -> tuple[float, float]:
    """A plain SimPy M/M/c; returns (CPU seconds, mean sojourn time). The draws are timed too:
    the engine draws its own numbers while it runs."""
    import numpy as np
    import simpy

    t = time.process_time()
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / LAM, customers).tolist()
    services = rng.exponential(1 / MU, customers).tolist()
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=C)
    total = [0.0]

    def customer(service: float):  # type: ignore[no-untyped-def]
        t0 = env.now
        with servers.request() as req:
            yield req
            yield env.timeout(service)
        total[0] += env.now - t0

    def source():  # type: ignore[no-untyped-def]
        for gap, service in zip(gaps, services, strict=True):
            yield env.timeout(gap)
            env.process(customer(service))

    env.process(source())
    env.run()
    return time.process_time() - t, total[0] / customers


def engine_mmc(customers: int, seed: int) -> tuple[float, float, float]:
    """The same queue as a scenario; returns (CPU seconds, customers arrived, mean sojourn)."""
    from sim.des import simulate
    from sim.scenario import parse_scenario

    duration = customers / LAM
    sc = parse_scenario({
        "name": "mmc_bench",
        "run": {"duration_s": duration, "interval_s": duration / 100, "seed": seed},
        "arrivals": {"process": "poisson", "rate_per_s": LAM},
        "workload": {"classes": {"job": {"probability": 1.0, "stages": [{"tool": "server"}]}}},
        "services": {"tools": {"server": {"concurrency": C, "latency": {"type": "exponential", "rate": MU}}}},
    })
    t = time.process_time()
    r = simulate(sc)
    wall = time.process_time() - t
    s = r.summary["classes"]["job"]
    return wall, s["arrived"], s["e2e"]["mean"]


def agent_mix(duration_s: float, sets: list[str]) -> tuple[float, float]:
    """The default agent mix for `duration_s`; returns (CPU seconds, commands arrived)."""
    from sim.des import simulate
    from sim.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "smoke.yaml", [f"run.duration_s={duration_s}", *sets])
    t = time.process_time()
    r = simulate(sc)
    wall = time.process_time() - t
    return wall, float(r.summary["arrived"])


def feb8(factor: float, hours: float | None) -> tuple[float, float]:
    """feb8_outage.yaml scaled by `factor`, its first `hours` (None: all of it); returns (CPU
    seconds, commands arrived)."""
    from sim.des import simulate
    from sim.rules.scaling import scale_scenario
    from sim.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / "feb8_outage.yaml")
    if hours is not None and hours * 3600 < sc.run.duration_s:
        duration = hours * 3600
        faults = [f.model_dump(mode="json") for f in sc.faults if f.at_s < duration]
        sc = load_scenario(ROOT / "scenarios" / "feb8_outage.yaml",
                           [f"run.duration_s={duration}", f"faults={json.dumps(faults)}"])
    if factor != 1:
        sc = scale_scenario(sc, factor)
    t = time.process_time()
    r = simulate(sc)
    return time.process_time() - t, float(r.summary["arrived"])


def worker(task: dict[str, Any]) -> dict[str, float]:
    """One measurement, in this process: what the orchestrator asked for, as numbers."""
    kind = task["kind"]
    if kind == "mmc":
        raw_s, raw_w = raw_simpy_mmc(task["customers"], task["seed"])
        eng_s, n, eng_w = engine_mmc(task["customers"], task["seed"])
        return {"raw_per_s": task["customers"] / raw_s, "engine_per_s": n / eng_s, "raw_w": raw_w, "engine_w": eng_w}
    if kind == "agent":
        cpu_s, n = agent_mix(task["duration_s"], task["sets"])
    else:
        cpu_s, n = feb8(task["factor"], task["hours"])
    return {"per_s": n / cpu_s, "cpu_s": cpu_s, "commands": n}


# -- orchestration ----------------------------------------------------------------------------
def measure(task: dict[str, Any], code: Path) -> dict[str, float]:
    """Run `task` in a fresh interpreter on the code under `code`; adds the load averages."""
    before = os.getloadavg()[0]
    out = subprocess.run([sys.executable, __file__, "--worker", json.dumps(task), "--code", str(code)],
                         capture_output=True, text=True, check=True, cwd=code)
    res: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    res["load"] = max(before, os.getloadavg()[0])
    return res


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    """`median (min-max)` of the repeats."""
    med = fmt.format(statistics.median(values))
    return med if len(values) == 1 else f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def run_all(tasks: dict[str, dict[str, Any]], repeats: dict[str, int], codes: dict[str, Path]) -> dict[str, dict[str, list]]:
    """Every task `repeats[name]` times on every code tree, interleaved (a neighbour's burst of
    load falls on both sides alike); results[name][code label] is the list of repeats."""
    results: dict[str, dict[str, list]] = {n: {c: [] for c in codes} for n in tasks}
    for name, task in tasks.items():
        for i in range(repeats[name]):
            order = list(codes) if i % 2 == 0 else list(reversed(codes))
            for label in order:
                r = measure({**task, "seed": i}, codes[label])
                results[name][label].append(r)
                print(f"  {name} [{label}] rep {i + 1}: " + ", ".join(f"{k} {v:,.3g}" for k, v in r.items()),
                      file=sys.stderr, flush=True)
    return results


def report(results: dict[str, dict[str, list]], args: argparse.Namespace, labels: list[str]) -> bool:
    """Print the tables (one column per code tree); True when this code meets every target."""
    ok = True
    print("\n## bench_engine: SimPy engine speed (median (range) of repeats, CPU time, one core)\n")
    print("| measurement | " + " | ".join(labels) + " | target | verdict |")
    print("|---|" + "---|" * len(labels) + "---|---|")

    def row(name: str, values: dict[str, list[float]], target: str, passed: bool | None, fmt: str = "{:,.0f}") -> None:
        nonlocal ok
        verdict = "" if passed is None else "PASS" if passed else "FAIL"
        ok = ok and passed is not False
        print(f"| {name} | " + " | ".join(spread(values[c], fmt) for c in labels) + f" | {target} | {verdict} |")

    def col(name: str, key: str) -> dict[str, list[float]]:
        return {c: [r[key] for r in results[name][c]] for c in labels}

    loads = [r["load"] for runs in results.values() for rs in runs.values() for r in rs]
    if "mmc" in results:
        ratios = {c: [r["engine_per_s"] / r["raw_per_s"] for r in results["mmc"][c]] for c in labels}
        row(f"raw SimPy M/M/{C} (rho {RHO}), customers/s", col("mmc", "raw_per_s"), "", None)
        row(f"surge engine, same M/M/{C}, customers/s", col("mmc", "engine_per_s"), "", None)
        ratio = statistics.median(ratios[labels[0]])
        row("engine / raw SimPy", ratios, f">= {RATIO_TARGET:.2f}", ratio >= RATIO_TARGET, "{:.2f}")
    if "agent" in results:
        rate = statistics.median(col("agent", "per_s")[labels[0]])
        n = statistics.median(col("agent", "commands")[labels[0]])
        row(f"agent mix (smoke.yaml, {args.agent_duration:.0f} s simulated, {n:,.0f} commands), commands/s",
            col("agent", "per_s"), f">= {AGENT_TARGET:,}", rate >= AGENT_TARGET)
    window = "13 h" if args.feb8_hours is None else f"first {args.feb8_hours:g} h"
    rates: dict[int, float] = {}
    for f in FEB8_SCALES:
        name = f"feb8_x{f}"
        if name not in results:
            continue
        rates[f] = statistics.median(col(name, "per_s")[labels[0]])
        n = statistics.median(col(name, "commands")[labels[0]])
        target, passed = (f">= {FEB8_TARGET:,}", rates[f] >= FEB8_TARGET) if f == 1 else ("", None)
        row(f"feb8_outage x{f} ({window}, {n:,.0f} commands), commands/s", col(name, "per_s"), target, passed)
    if len(rates) == 2:
        scale = {c: [statistics.median(col("feb8_x16", "per_s")[c]) / statistics.median(col("feb8_x1", "per_s")[c])]
                 for c in labels}
        row("feb8 x16 / x1 (of the medians)", scale, f">= {FEB8_SCALE_TARGET:.2f}",
            scale[labels[0]][0] >= FEB8_SCALE_TARGET, "{:.2f}")
    print(f"\nload average (1 min) during the measurements: {min(loads):.1f}–{max(loads):.1f} on "
          f"{os.cpu_count()} CPUs; `{labels[0]}` is this checkout"
          + (f", `{labels[1]}` is {args.baseline}" if len(labels) > 1 else ""))
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--agent-duration", type=float, default=7200.0, help="simulated seconds of the agent mix")
    ap.add_argument("--agent-repeat", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra overrides for the agent mix")
    ap.add_argument("--feb8-hours", type=float, default=None, help="simulate only the first hours of feb8 (default: all 13)")
    ap.add_argument("--feb8-repeat", type=int, default=3)
    ap.add_argument("--only", default="mmc,agent,feb8", help="comma-separated: mmc, agent, feb8")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to measure side by side")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--code", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        code = args.code.resolve()
        sys.path.insert(0, str(code))
        import sim

        if not Path(sim.__file__).resolve().is_relative_to(code):
            raise SystemExit(f"worker: imported sim from {sim.__file__}, not from {code}")
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.baseline is not None and not (args.baseline / "sim" / "des").is_dir():
        print(f"ArgumentError: --baseline must be a surge checkout (no sim/des in {args.baseline})", file=sys.stderr)
        return 2
    only = set(args.only.split(","))
    tasks: dict[str, dict[str, Any]] = {}
    repeats: dict[str, int] = {}
    if "mmc" in only:
        tasks["mmc"], repeats["mmc"] = {"kind": "mmc", "customers": args.customers}, args.repeat
    if "agent" in only:
        tasks["agent"] = {"kind": "agent", "duration_s": args.agent_duration, "sets": args.sets}
        repeats["agent"] = args.agent_repeat
    if "feb8" in only:
        for f in FEB8_SCALES:
            tasks[f"feb8_x{f}"] = {"kind": "feb8", "factor": f, "hours": args.feb8_hours}
            repeats[f"feb8_x{f}"] = args.feb8_repeat
    codes = {"this code": ROOT}
    if args.baseline is not None:
        codes["baseline"] = args.baseline.resolve()
    results = run_all(tasks, repeats, codes)
    return 0 if report(results, args, list(codes)) else 1


if __name__ == "__main__":
    sys.exit(main())
