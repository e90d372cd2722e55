"""Benchmark: a 20-point capacity curve of the Feb 8 peak (14:00-16:00, the overlay
scenarios/overlays/feb8_peak.yaml on feb8_outage.yaml), 10 replications per point, as
`surge sweep` runs it: wall time on one process, on the local pool of 2 processes, and on Ray
with 2 local workers (when Ray is installed); the speed-ups over one process; and whether the
three gave identical results (they must: the same seeds).

The curve is offered load (`arrivals.scale` 0.55 .. 1.50) at the scenario's fleet: where the
SLOs break and the cell locks in. No cache: every run is computed.

    nice -n 10 .venv/bin/python benchmarks/bench_plan.py [--points 20] [--replications 10] [--repeats 1]
                                                         [--setups one,pool,ray]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.planning import Evaluator, LocalBackend, RayBackend, Source, parse_axis, sweep  # noqa: E402

SOURCE = Source(ROOT / "scenarios" / "feb8_outage.yaml", ROOT / "scenarios" / "overlays" / "feb8_peak.yaml")


def one(backend: object, points: int, replications: int) -> tuple[float, str, int, float]:
    hi = 0.55 + 0.05 * (points - 1)
    axis = parse_axis(f"arrivals.scale=0.55..{hi:.2f}..0.05")
    ev = Evaluator(SOURCE, backend=backend)  # type: ignore[arg-type]
    t0, c0 = time.perf_counter(), _cpu_s()
    sw = sweep(ev, [axis], replications)
    wall = time.perf_counter() - t0
    return wall, json.dumps(sw.points, sort_keys=True), ev.computed, _cpu_s() - c0


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (pool workers; not Ray's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=20)
    ap.add_argument("--replications", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--setups", default="one,pool,ray", help="which of one, pool, ray to run")
    args = ap.parse_args()
    wanted = set(args.setups.split(","))
    try:
        import ray
    except ImportError:
        ray = None
    setups: list[tuple[str, object]] = []
    if "one" in wanted:
        setups.append(("1 process", LocalBackend(1)))
    if "pool" in wanted:
        setups.append(("pool, 2 processes", LocalBackend(2)))
    if "ray" in wanted and ray is not None:
        setups.append(("Ray, 2 local workers", RayBackend(num_cpus=2)))
    print(f"Feb 8 peak capacity curve: {args.points} points x {args.replications} replications "
          f"= {args.points * args.replications} runs; load average before {os.getloadavg()}")
    walls: dict[str, list[float]] = {name: [] for name, _ in setups}
    outputs: set[str] = set()
    for rep in range(args.repeats):
        for name, backend in setups:
            wall, out, runs, cpu = one(backend, args.points, args.replications)
            backend.close()  # type: ignore[attr-defined]
            walls[name].append(wall)
            outputs.add(out)
            cpu_text = f"{cpu:7.1f} CPU-s" if "Ray" not in name else "  (Ray workers' CPU not counted)"
            print(f"  repeat {rep + 1}: {name:<22} {wall:7.1f} s  {runs / wall:5.2f} runs/s  {cpu_text}  "
                  f"load average {os.getloadavg()[0]:.2f}", flush=True)
    base = min(walls["1 process"]) if "1 process" in walls else None
    print("\n| setup | wall s (min .. max) | speed-up over 1 process (best) |\n|---|---|---|")
    for name, ws in walls.items():
        gain = f"{base / min(ws):.2f}x" if base else "-"
        print(f"| {name} | {min(ws):.1f} .. {max(ws):.1f} | {gain} |")
    same = len(outputs) == 1
    print(f"\nidentical results on every setup: {same}; load average after {os.getloadavg()}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
