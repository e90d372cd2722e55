"""Benchmark: memory stays bounded however many commands run (issue 2: 10 million commands,
peak RSS under 1.5 GB).

Runs one long simulation in this process and reports the peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) and the RSS at 10%, 50% and 100% of the run
(from /proc/self/statm), so a leak shows as growth, not just as a big number.

- `--mode mmc` (default): an M/M/c queue (c = 64, rho = 0.9) at `--rate` commands per second for
  as long as `--commands` need; every command goes through the whole engine path (arrivals,
  client, stack, pool, recorder: series, e2e histograms).
- `--mode agent`: the default agent mix (scenarios/smoke.yaml: sessions, auth, gateway, tools,
  LLM fleet), scaled up (population and fleet x `--scale`) and run for as long as `--commands` need.

    .venv/bin/python benchmarks/bench_memory.py [--commands 10000000] [--mode mmc|agent]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.des import simulate  # noqa: E402
from sim.scenario import load_scenario, parse_scenario  # noqa: E402

LIMIT_GB = 1.5
_PAGE = resource.getpagesize()


def rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE / 1e9


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: kilobytes


def mmc_scenario(commands: int, rate: float):  # type: ignore[no-untyped-def]
    c = 64
    duration = commands / rate
    return parse_scenario({
        "name": "mmc_memory",
        "run": {"duration_s": duration, "interval_s": max(1.0, duration / 1000), "seed": 1},
        "arrivals": {"process": "poisson", "rate_per_s": rate},
        "workload": {"classes": {"job": {"probability": 1.0, "stages": [{"tool": "server"}]}}},
        "services": {"tools": {"server": {"concurrency": c,
                                          "latency": {"type": "exponential", "mean": 0.9 * c / rate}}}},
    })


def agent_scenario(commands: int, scale: float):  # type: ignore[no-untyped-def]
    base = load_scenario(ROOT / "scenarios" / "smoke.yaml")
    per_s = 12.7 * scale  # the smoke mix runs ~12.7 commands/s at scale 1 (measured)
    duration = commands / per_s
    llm = base.services.llm
    assert llm is not None
    return load_scenario(ROOT / "scenarios" / "smoke.yaml", [
        f"run.duration_s={duration:.0f}", f"run.interval_s={max(60.0, duration / 1000):.0f}",
        f"population.scale={scale}", f"services.llm.replicas={round(llm.replicas * scale)}",
        f"services.gateway.rate_limit.global_per_s={200 * scale}",
        f"services.gateway.concurrency={2000 * scale:.0f}", f"services.auth.concurrency={32 * scale:.0f}",
        f"services.tools.catalog.concurrency={64 * scale:.0f}", f"services.tools.order.concurrency={32 * scale:.0f}",
        f"services.tools.payment.concurrency={32 * scale:.0f}",
    ])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", type=int, default=10_000_000)
    ap.add_argument("--mode", choices=("mmc", "agent"), default="mmc")
    ap.add_argument("--rate", type=float, default=2000.0, help="mmc: commands per simulated second")
    ap.add_argument("--scale", type=float, default=20.0, help="agent: population and fleet multiplier")
    args = ap.parse_args()

    sc = mmc_scenario(args.commands, args.rate) if args.mode == "mmc" else agent_scenario(args.commands, args.scale)
    before = rss_gb()
    marks: dict[int, float] = {}

    def progress(frac: float) -> None:
        pct = round(frac * 100)
        if pct in (10, 50, 100):
            marks[pct] = rss_gb()

    t = time.perf_counter()
    r = simulate(sc, progress=progress)
    wall = time.perf_counter() - t
    arrived = sum(float(v.sum()) for k, v in r.series.items() if k.startswith("arrived:"))
    peak = peak_gb()

    print(f"\n## bench_memory: {args.mode}, {arrived:,.0f} commands simulated\n")
    print("| measurement | value | target | verdict |")
    print("|---|---|---|---|")
    print(f"| commands simulated | {arrived:,.0f} ({sc.run.duration_s:,.0f} s simulated, {wall:,.0f} s wall, "
          f"{arrived / wall:,.0f}/s) | >= {args.commands:,} | {'PASS' if arrived >= 0.95 * args.commands else 'FAIL'} |")
    print(f"| RSS before / at 10% / 50% / 100% of the run, GB | {before:.3f} / {marks.get(10, float('nan')):.3f} / "
          f"{marks.get(50, float('nan')):.3f} / {marks.get(100, float('nan')):.3f} | | |")
    print(f"| peak RSS (ru_maxrss), GB | {peak:.3f} | < {LIMIT_GB} | {'PASS' if peak < LIMIT_GB else 'FAIL'} |")
    return 0 if peak < LIMIT_GB and arrived >= 0.95 * args.commands else 1


if __name__ == "__main__":
    sys.exit(main())
