"""`surge sweep`, `surge plan` and `surge margin` end to end through the real CLI, and the
one-line error contract for their flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from planning_helpers import two_tier_source

ROOT = Path(__file__).resolve().parents[2]


def surge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def scenario(tmp_path: Path) -> str:
    return str(two_tier_source(tmp_path, front=12, back=2).path)


def test_sweep_writes_table_and_figures(tmp_path: Path, scenario: str) -> None:
    out, cache = tmp_path / "sw", tmp_path / "cache"
    args = ("sweep", scenario, "--vary", "services.tools.back.concurrency=1,2,4", "--replications", "2",
            "--out", str(out), "--cache", str(cache), "--set", "run.duration_s=1200")
    p = surge(*args)
    assert p.returncode == 0, p.stderr
    assert "3 points x 2 replications (6 runs computed, 0 reused" in p.stdout
    for name in ("sweep.json", "sweep.csv", "sweep.md", "sweep_slos.png"):
        assert (out / name).is_file(), name
    again = surge(*args)
    assert "(0 runs computed, 6 reused from the cache)" in again.stdout


def test_plan_prints_the_answer_and_writes_plan_json(tmp_path: Path, scenario: str) -> None:
    out = tmp_path / "plan"
    p = surge("plan", scenario, "--vary", "services.tools.back.concurrency=1..6", "--min-replications", "2",
              "--max-replications", "4", "--margin-tol", "0.1", "--out", str(out), "--no-cache",
              "--set", "run.duration_s=1500")
    assert p.returncode == 0, p.stderr
    assert "plan without faults" in p.stdout and "answer: services.tools.back.concurrency=" in p.stdout
    assert "bottleneck at load" in p.stdout and "binding SLO: job.e2e_p99_s" in p.stdout
    doc = json.loads((out / "plan.json").read_text())
    assert [pl["mode"] for pl in doc["plans"]] == ["without faults"]  # the scenario has no faults
    assert (out / "plan.md").is_file() and (out / "plan.png").is_file()


@pytest.mark.parametrize("flags, message", [
    (("--vary", "services.tools.back.concurency=1,2"), "ScenarioError: "),
    (("--vary", "services.tools.back.concurrency=3..1"), "PlanningError: --vary: a range"),
    (("--vary", "services.tools.back.concurrency=1,2", "--backend", "spark"), "BackendError: --backend"),
    (("--vary", "services.tools.back.concurrency=1,2", "--engine", "warp"), "PlanningError: --engine"),
])
def test_bad_flags_are_one_line_exit_2(tmp_path: Path, scenario: str, flags: tuple[str, ...], message: str) -> None:
    p = surge("sweep", scenario, *flags, "--no-cache", "--out", str(tmp_path / "x"))
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), p.stderr


def test_margin_names_its_axis(tmp_path: Path) -> None:
    p = surge("margin", "scenarios/metastable_retry.yaml", "--along", "size", "--no-cache")
    assert p.returncode == 2 and p.stderr.startswith("PlanningError: --along"), p.stderr
