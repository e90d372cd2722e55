"""`surge run` on inputs that validate but once crashed or never ended (issue 15): a population
without session fields, an unusable --out, a run whose simulated time stalls. Each is one line,
exit 2, in bounded time; the good one runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_BASE = """name: guard
run: {duration_s: DURATION, interval_s: INTERVAL}
workload: {classes: {job: {probability: 1.0, stages: [{tool: server}]}}}
services: {tools: {server: {concurrency: 1000, latency: LATENCY}}}
"""


def surge(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _scenario(tmp_path: Path, extra: str, duration_s: float = 30, latency: str = "{type: constant, value: 0.05}") -> Path:
    path = tmp_path / "guard.yaml"
    text = _BASE.replace("DURATION", str(duration_s)).replace("INTERVAL", str(max(1.0, duration_s / 100)))
    path.write_text(text.replace("LATENCY", latency) + extra)
    return path


def _one_line(p: subprocess.CompletedProcess[str], start: str) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout[-500:], p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert lines[0].startswith(start), lines[0]
    return lines[0]


def test_a_population_without_session_fields_runs(tmp_path: Path) -> None:
    """Regression: the default commands_per_session / think_time_s were raw dicts (AttributeError)."""
    path = _scenario(tmp_path, "population: {daily_active_users: 100000}\n")
    p = surge("run", str(path), "--out", str(tmp_path / "run"), "--no-report")
    assert p.returncode == 0, p.stderr[-2000:]
    assert (tmp_path / "run" / "summary.json").is_file()


def test_an_unusable_out_fails_before_the_simulation(tmp_path: Path) -> None:
    """An existing file, a folder under a file, a place nothing can be created: one line, exit 2, and
    at once: the scenario would simulate for hours, so the check must come first."""
    path = _scenario(tmp_path, "arrivals: {rate_per_s: 100}\n", duration_s=1e6)
    (tmp_path / "a_file").write_text("x")
    for out, why in ((tmp_path / "a_file", "exists and is not a folder"),
                     (tmp_path / "a_file" / "run", "cannot write results there"),
                     (Path("/proc/surge-run"), "cannot write results there")):
        t0 = time.monotonic()
        line = _one_line(surge("run", str(path), "--out", str(out), "--no-report"), f"ResultsError: {out}: ")
        assert why in line and time.monotonic() - t0 < 20, line


def test_a_stalled_simulation_stops_with_one_line(tmp_path: Path) -> None:
    """10,000 commands a session with zero latency and zero think time: simulated time barely moves.
    The engine's guard stops it with a SimulationError instead of running for ever."""
    path = _scenario(tmp_path, "population: {daily_active_users: 8640000, commands_per_session: "
                               "{type: constant, value: 10000}}\n", latency="{type: constant, value: 0}")
    t0 = time.monotonic()
    line = _one_line(surge("run", str(path), "--out", str(tmp_path / "run"), "--no-report"),
                     "SimulationError: simulated time stalled at t=")
    assert "events per simulated second" in line
    assert time.monotonic() - t0 < 45


def test_the_fleet_engine_refuses_what_it_does_not_model(tmp_path: Path) -> None:
    """`--engine fleet` on a scenario whose orders hold three inventory stages (groceries): one
    line naming what is not modelled, exit 2, and no run folder."""
    out = tmp_path / "run"
    line = _one_line(surge("run", "scenarios/groceries.yaml", "--engine", "fleet", "--out", str(out)),
                     "SimulationError: '--engine fleet': ")
    assert "more than one inventory stage" in line and "workload.classes.grocery_basket" in line, line
    assert "--engine des" in line, line
    assert not out.exists()


def test_fleet_refuses_only_what_it_does_not_model_and_auto_follows() -> None:
    """Travel and groceries (several holds per order) are refused by `--engine fleet`; the
    on-sale moment, image queries and the proactive agent are modelled; `auto` keeps the small
    cells on SimPy either way, and a modelled scenario grown past AUTO_COMMANDS goes to the fleet."""
    import pytest

    from sim.engines import choose, fleet_missing
    from sim.errors import SimulationError
    from sim.scenario import load_scenario

    for name in ("travel", "groceries"):
        sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        assert "more than one inventory stage" in (fleet_missing(sc) or ""), name
        with pytest.raises(SimulationError, match="does not model"):
            choose(sc, "fleet")
        assert choose(sc, "auto") == "des"
    for name in ("premiere_onsale", "multimodal", "proactive"):
        sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        assert fleet_missing(sc) is None, name
        assert choose(sc, "fleet") == "fleet" and choose(sc, "auto") == "des", name
    big = load_scenario(ROOT / "scenarios" / "multimodal.yaml", ["arrivals.rate_per_s=800"])
    assert choose(big, "auto") == "fleet"
    big_groceries = load_scenario(ROOT / "scenarios" / "groceries.yaml", ["arrivals.scale=1000"])
    assert choose(big_groceries, "auto") == "des"
    quantity = load_scenario(ROOT / "scenarios" / "premiere_onsale.yaml",
                             ["workload.classes.buy_tickets.stages.3.tool.quantity={type: uniform, low: 1, high: 3}"])
    assert "hold quantities that vary" in (fleet_missing(quantity) or "")
    assert fleet_missing(load_scenario(ROOT / "scenarios" / "smoke.yaml")) is None


def test_the_fleet_engine_takes_the_launch_population_and_the_funnel() -> None:
    """Since the fleet engine models the launch population and the buy funnel (sim/fleet/launch.py,
    funnel.py), launch scenarios run on it when asked; their shipped cells are small, so `auto`
    keeps them on SimPy."""
    from sim.engines import choose, fleet_missing
    from sim.scenario import load_scenario

    for name in ("feb6_launch", "spring_festival"):
        sc = load_scenario(ROOT / "scenarios" / f"{name}.yaml")
        assert sc.population is not None and sc.population.launch is not None, name
        assert fleet_missing(sc) is None, name
        assert choose(sc, "fleet") == "fleet", name
        assert choose(sc, "auto") == "des", name
