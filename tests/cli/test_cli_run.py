"""`surge run` end to end through the real CLI: results folder, metastability analysis,
report with the outage section, SLO gate and the one-line error contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def surge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from sim.cli import main; main()", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_run_writes_results_analysis_and_outage_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = surge("run", "scenarios/metastable_retry.yaml", "--out", str(out))
    assert p.returncode == 0, p.stderr
    for name in ("run.json", "timeseries.csv", "histograms.npz", "events.jsonl", "summary.json",
                 "metastability.json", "report.html", "report.md"):
        assert (out / name).is_file(), name
    analysis = json.loads((out / "metastability.json").read_text())
    assert analysis["stuck_at_end"] is True  # the scenario's trigger sits inside the lock-in region
    assert "STUCK" in p.stdout
    html = (out / "report.html").read_text()
    assert "Outage and recovery" in html and "fig-outage.png" in (out / "report.md").read_text()


def test_run_without_outage_has_no_outage_section(tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = surge("run", "scenarios/validation/mm1.yaml", "--out", str(out), "--set", "run.duration_s=300")
    assert p.returncode == 0, p.stderr
    assert json.loads((out / "metastability.json").read_text())["onset_s"] is None
    assert "Outage and recovery" not in (out / "report.html").read_text()
    assert "metastability:" not in p.stdout


def test_fail_on_slo_exits_1(tmp_path: Path) -> None:
    p = surge("run", "scenarios/validation/slo_fail.yaml", "--out", str(tmp_path / "r"), "--no-report",
              "--fail-on-slo")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL" in p.stdout


def test_bad_override_is_one_line_exit_2(tmp_path: Path) -> None:
    p = surge("run", "scenarios/smoke.yaml", "--set", "services.llm.replicas=lots", "--out", str(tmp_path))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ScenarioError: scenarios/smoke.yaml: services.llm.replicas")
    assert "Traceback" not in p.stderr
