"""Benchmark: the SimPy engine's speed (issue 2).

(a) An M/M/c queue (c = 4, rho = 0.8) run through surge's engine (`sim.des.simulate`, the whole
    scenario path: arrivals, client, stack, pool, recorder) against a hand-written raw SimPy
    M/M/c (`simpy.Resource` and one timeout per customer, inter-arrival and service times
    pre-drawn with numpy like the engine does), in the same process, the same number of
    customers. Target: the engine keeps >= 70% of raw SimPy's customers per second.
(b) The default agent mix (scenarios/smoke.yaml: chat plus the multi-stage help_me_buy, with
    auth, gateway, tools and a 4-replica LLM fleet), run longer with `--set`: commands
    simulated per wall-clock second on one core. Target: >= 10,000.

Each measurement is repeated `--repeat` times; the median is reported. Times are CPU seconds of
this process (`time.process_time()`): on a shared machine wall time measures the neighbours;
on an idle core the two agree.

    .venv/bin/python benchmarks/bench_engine.py [--customers 200000] [--repeat 5] [--agent-duration 7200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import simpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.des import simulate  # noqa: E402
from sim.scenario import load_scenario, parse_scenario  # noqa: E402

C, MU, RHO = 4, 1.0, 0.8
LAM = RHO * C * MU
RATIO_TARGET = 0.70
AGENT_TARGET = 10_000


def raw_simpy_mmc(customers: int, seed: int) -> tuple[float, float]:
    """A plain SimPy M/M/c; returns (CPU seconds, mean sojourn time). The draws are timed too:
    the engine draws its own numbers while it runs."""
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
    sc = load_scenario(ROOT / "scenarios" / "smoke.yaml", [f"run.duration_s={duration_s}", *sets])
    t = time.process_time()
    r = simulate(sc)
    wall = time.process_time() - t
    arrived = sum(float(v.sum()) for k, v in r.series.items() if k.startswith("arrived:"))
    return wall, arrived


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--agent-duration", type=float, default=7200.0, help="simulated seconds of the agent mix")
    ap.add_argument("--agent-repeat", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra overrides for the agent mix")
    args = ap.parse_args()

    raw_rates, eng_rates, ratios = [], [], []
    for i in range(args.repeat):
        raw_wall, raw_w = raw_simpy_mmc(args.customers, seed=i)
        eng_wall, n, eng_w = engine_mmc(args.customers, seed=i)
        raw_rates.append(args.customers / raw_wall)
        eng_rates.append(n / eng_wall)
        ratios.append(eng_rates[-1] / raw_rates[-1])
        print(f"  rep {i + 1}: raw SimPy {raw_rates[-1]:,.0f}/s (W {raw_w:.3f} s), "
              f"engine {eng_rates[-1]:,.0f}/s (W {eng_w:.3f} s), ratio {ratios[-1]:.2f}", file=sys.stderr)
    ratio = statistics.median(ratios)

    agent = [agent_mix(args.agent_duration, args.sets) for _ in range(args.agent_repeat)]
    agent_rates = [n / wall for wall, n in agent]
    agent_rate = statistics.median(agent_rates)
    commands = statistics.median(n for _, n in agent)
    wall = statistics.median(w for w, _ in agent)

    print("\n## bench_engine: SimPy engine speed (median of repeats)\n")
    print("| measurement | value | target | verdict |")
    print("|---|---|---|---|")
    print(f"| raw SimPy M/M/{C} (rho {RHO}), customers/s | {statistics.median(raw_rates):,.0f} | | |")
    print(f"| surge engine, same M/M/{C}, customers/s | {statistics.median(eng_rates):,.0f} | | |")
    print(f"| engine / raw SimPy | {ratio:.2f} | >= {RATIO_TARGET:.2f} | {'PASS' if ratio >= RATIO_TARGET else 'FAIL'} |")
    print(f"| agent mix (smoke.yaml, {args.agent_duration:.0f} s simulated, {commands:,.0f} commands, "
          f"{wall:.1f} CPU s), commands/s | {agent_rate:,.0f} | >= {AGENT_TARGET:,} | "
          f"{'PASS' if agent_rate >= AGENT_TARGET else 'FAIL'} |")
    return 0 if ratio >= RATIO_TARGET and agent_rate >= AGENT_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
