"""Benchmark: the campaign tools' wall times (issue 6), on this machine.

- the Feb 8 outage cell (13 simulated hours, ~95,000 commands) — `make demo`'s simulation;
- one metastable_retry replication, recovered and stuck (the cost of one vulnerability cell);
- the demand-only calibration cell of spring_festival.yaml (7 days, ~210,000 commands).

    .venv/bin/python benchmarks/bench_campaign.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.campaign import analyse, load_with_overlay  # noqa: E402
from sim.campaign.calibration import demand_only_overrides  # noqa: E402
from sim.des import simulate  # noqa: E402


def timed(label: str, path: Path, sets: list[str]) -> None:
    sc = load_with_overlay(path, None, sets)
    t0 = time.perf_counter()
    r = simulate(sc)
    wall = time.perf_counter() - t0
    commands = sum(r.summary["classes"][c]["arrived"] for c in r.meta["classes"])
    a = analyse(r, scenario=sc)
    print(f"{label:<40} {wall:6.1f} s  {commands:>9,.0f} commands  {commands / wall:>8,.0f}/s  "
          f"stuck at end: {a['stuck_at_end']}")


def main() -> None:
    s = ROOT / "scenarios"
    timed("feb8_outage (12:00-01:00 cell)", s / "feb8_outage.yaml", [])
    timed("metastable_retry, 78% for 10 s", s / "metastable_retry.yaml", ["faults.0.magnitude=0.78"])
    timed("metastable_retry, 80% for 10 s", s / "metastable_retry.yaml", [])
    base = load_with_overlay(s / "spring_festival.yaml", None, ["population.scale=5e-5"])
    timed("spring_festival demand-only cell (5e-5)", s / "spring_festival.yaml",
          ["population.scale=5e-5", *demand_only_overrides(base)])


if __name__ == "__main__":
    main()
