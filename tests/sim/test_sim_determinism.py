"""Same seed, same bytes: a run folder is a pure function of the scenario, the seed and the
surge version (run.json carries no wall-clock time). A different seed gives different results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sim_helpers import ROOT

from sim.des import simulate
from sim.scenario.load import parse_scenario, read_yaml

FILES = ("run.json", "timeseries.csv", "histograms.npz", "events.jsonl", "summary.json")


def _busy_smoke():  # type: ignore[no-untyped-def]
    """The agent mix, short, with retries, a fault, autoscaling and a login storm: every stream is drawn."""
    data = read_yaml(ROOT / "scenarios" / "smoke.yaml")
    data["run"].update(duration_s=240, interval_s=30, warmup_s=30)
    data["population"]["scale"] = 0.5
    data["services"]["llm"]["autoscaling"] = {"min_replicas": 1, "max_replicas": 6, "interval_s": 30, "cold_start_s": 40}
    data["faults"] = [
        {"at_s": 60, "duration_s": 60, "target": "llm", "kind": "capacity_loss", "magnitude": 0.5},
        {"at_s": 90, "duration_s": 30, "target": "catalog", "kind": "error_rate", "magnitude": 0.3},
        {"at_s": 120, "duration_s": 10, "target": "auth", "kind": "session_invalidation", "magnitude": 0.5},
    ]
    return parse_scenario(data, "smoke.yaml", ROOT / "scenarios")


def _bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in FILES}


def test_same_seed_writes_identical_files(tmp_path: Path) -> None:
    sc = _busy_smoke()
    a = _bytes(simulate(sc, seed=5).write(tmp_path / "a"))
    b = _bytes(simulate(sc, seed=5).write(tmp_path / "b"))
    assert a == b
    assert simulate(sc, seed=5).summary["arrived"] > 100


def test_same_seed_same_bytes_in_another_process(tmp_path: Path) -> None:
    """No `hash()` or process state leaks in: a fresh interpreter with another hash seed agrees."""
    sc = _busy_smoke()
    here = _bytes(simulate(sc, seed=5).write(tmp_path / "here"))
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from test_sim_determinism import _busy_smoke; "
        "from sim.des import simulate; simulate(_busy_smoke(), seed=5).write(sys.argv[2])"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(tmp_path / "there")],
                   check=True, cwd=ROOT, env=env, timeout=120)
    assert _bytes(tmp_path / "there") == here


def test_different_seed_gives_different_results(tmp_path: Path) -> None:
    sc = _busy_smoke()
    a = _bytes(simulate(sc, seed=5).write(tmp_path / "a"))
    b = _bytes(simulate(sc, seed=6).write(tmp_path / "b"))
    assert a["timeseries.csv"] != b["timeseries.csv"]
    assert a["histograms.npz"] != b["histograms.npz"]
    assert a["run.json"] != b["run.json"]  # it names the seed
