"""Small real runs (the SimPy engine) written to disk once per test session, plus one hand-filled
fixture for series the engine may not record (e.g. cards redeemed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_results import fixture_results  # tests/reports is on sys.path (rootdir-less conftest)

from sim.des import simulate
from sim.scenario import load_scenario
from sim.scenario.load import parse_scenario, read_yaml

ROOT = Path(__file__).resolve().parents[2]
SLO_FAIL = ROOT / "scenarios" / "validation" / "slo_fail.yaml"


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The smoke agent scenario, shortened to 10 minutes, with the LLM fleet losing 75% of its
    replicas from 300 s to 450 s (so every figure, fault shading included, has something to draw)."""
    data = read_yaml(ROOT / "scenarios" / "smoke.yaml")
    data["run"].update(duration_s=600, interval_s=30, warmup_s=120)
    data["faults"] = [{"at_s": 300, "duration_s": 150, "target": "llm", "kind": "capacity_loss", "magnitude": 0.75}]
    sc = parse_scenario(data, "smoke.yaml", ROOT / "scenarios")
    return simulate(sc).write(tmp_path_factory.mktemp("smoke") / "run")


@pytest.fixture(scope="session")
def slo_fail_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate(load_scenario(SLO_FAIL)).write(tmp_path_factory.mktemp("slo_fail") / "run")


@pytest.fixture(scope="session")
def fast_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """slo_fail with a server twice as fast: every SLO passes, latency far lower."""
    sc = load_scenario(SLO_FAIL, ["services.tools.server.latency.rate=16"])
    return simulate(sc).write(tmp_path_factory.mktemp("fast") / "run")


def write_replications(folder: Path, overrides: list[str], n: int = 5, base_seed: int = 100) -> Path:
    sc = load_scenario(SLO_FAIL, ["run.duration_s=300", *overrides])
    for i in range(1, n + 1):
        simulate(sc, seed=base_seed + i).write(folder / f"rep-{i:03d}")
    return folder


@pytest.fixture(scope="session")
def reps_slow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_replications(tmp_path_factory.mktemp("reps") / "slow", [])


@pytest.fixture(scope="session")
def reps_fast(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same seeds as reps_slow (common random numbers), server 25% faster."""
    return write_replications(tmp_path_factory.mktemp("reps") / "fast", ["services.tools.server.latency.rate=10"])


@pytest.fixture(scope="session")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fixture_results().write(tmp_path_factory.mktemp("fixture") / "run")


@pytest.fixture(scope="session")
def feb8_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Feb 8 outage as shipped (13 simulated hours from 12:00, about 15 s): an outage with a
    one-minute fault (the session cache dropping 90% of sessions at 14:20) on a 13-hour axis."""
    return simulate(load_scenario(ROOT / "scenarios" / "feb8_outage.yaml")).write(tmp_path_factory.mktemp("feb8") / "run")
