"""`surge run` end to end through the real CLI: results folder, metastability analysis,
report with the outage section, SLO gate and the one-line error contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_fail_on_slo_exits_99(tmp_path: Path) -> None:
    p = surge("run", "scenarios/validation/slo_fail.yaml", "--out", str(tmp_path / "r"), "--no-report",
              "--fail-on-slo")
    assert p.returncode == 99, p.stdout + p.stderr
    assert "FAIL" in p.stdout


def test_bad_override_is_one_line_exit_2(tmp_path: Path) -> None:
    p = surge("run", "scenarios/smoke.yaml", "--set", "services.llm.replicas=lots", "--out", str(tmp_path))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ScenarioError: scenarios/smoke.yaml: services.llm.replicas")
    assert "Traceback" not in p.stderr


def test_user_mistakes_anywhere_are_one_line_exit_2(tmp_path: Path) -> None:
    """The one error boundary: mistakes in every front-door command are one line, exit 2."""
    cases = [
        ("validate-campaign", "scenarios/smoke.yaml", "--no-simulate"),  # no campaign to compare with
        ("stack", "serve", "--scale", "0"),
        ("stack", "serve", "--port", "99999"),
        ("loadtest", "scenarios/demo_fault.yaml", "--start-stack", "--stack-options", "{bad", "--out", str(tmp_path)),
        ("loadtest", "scenarios/demo_fault.yaml", "--host", "http://127.0.0.1:9", "--duration", "5x"),
        ("mitigations", "scenarios/feb8_outage.yaml", "--dir", str(tmp_path)),  # no overlays: not a silent 0
        ("explore", "vulnerability", "scenarios/metastable_retry.yaml", "--loads", "a,b"),
        ("run", "scenarios/feb8_outage.yaml", "--scale", "nope", "--out", str(tmp_path / "s")),
        ("run", "scenarios/validation/mm1.yaml", "--scale", "full", "--out", str(tmp_path / "s")),  # not a cell
        ("run", "scenarios/feb8_outage.yaml", "--engine", "fleet", "--fleet-dt", "0.7", "--out", str(tmp_path / "s")),
    ]
    for args in cases:
        p = surge(*args)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, (args, p.stderr)


def test_an_unreachable_target_exits_3_before_any_load(tmp_path: Path) -> None:
    p = surge("loadtest", "scenarios/demo_fault.yaml", "--host", "http://127.0.0.1:9", "--duration", "20s",
              "--out", str(tmp_path))
    assert p.returncode == 3 and p.stderr.strip().startswith("TargetError:"), p.stderr
    assert "load test:" not in p.stdout and not (tmp_path / "plan.json").exists()


def test_metastability_writes_nothing_unless_asked(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert surge("run", "scenarios/validation/mm1.yaml", "--out", str(run), "--set", "run.duration_s=300",
                 "--no-report").returncode == 0
    before = sorted(p.name for p in run.iterdir())
    (run / "metastability.json").unlink()
    assert surge("metastability", str(run)).returncode == 0
    assert sorted(p.name for p in run.iterdir()) == [n for n in before if n != "metastability.json"]
    out = tmp_path / "analysis"
    assert surge("metastability", str(run), "--out", str(out)).returncode == 0
    assert json.loads((out / "metastability.json").read_text())["onset_s"] is None  # strict JSON: null, not NaN
    assert "NaN" not in (out / "metastability.json").read_text()


def test_simulating_needs_no_stack_packages(tmp_path: Path) -> None:
    """`pip install surge` (without the `stack` extra) simulates, reports and lists examples:
    torch, FastAPI, uvicorn, httpx, Locust and gevent are blocked from importing here."""
    block = ("import sys\n"
             "for m in ('torch', 'fastapi', 'uvicorn', 'httpx', 'locust', 'gevent'):\n"
             "    sys.modules[m] = None\n"
             "from sim.cli import main\n"
             "sys.exit(main())\n")
    for args in (["examples"], ["validate", "smoke"],
                 ["run", "smoke", "--set", "run.duration_s=600", "--out", str(tmp_path / "r")]):
        p = subprocess.run([sys.executable, "-c", block, *args], capture_output=True, text=True, cwd=ROOT,
                           timeout=300)
        assert p.returncode == 0, (args, p.stderr[-2000:])
    assert (tmp_path / "r" / "report.html").is_file()
    p = subprocess.run([sys.executable, "-c", block, "loadtest", "smoke", "--start-stack"], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2 and "surge[stack]" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_the_readme_ci_example_passes_against_the_shipped_baseline(tmp_path: Path) -> None:
    """The GitHub Actions example in the README, as written: 5 replications of smoke.yaml with the
    baseline's seeds, then `surge check` against baselines/smoke.yaml (exit 0)."""
    run = tmp_path / "pr"
    assert surge("run", "scenarios/smoke.yaml", "--replications", "5", "--out", str(run), "--no-report").returncode == 0
    p = surge("check", str(run), "--baseline", "baselines/smoke.yaml")
    assert p.returncode == 0, p.stdout
    assert "FAIL" not in p.stdout and "success_rate" in p.stdout


def test_run_scale_scales_population_and_capacities(tmp_path: Path) -> None:
    out = tmp_path / "run"
    p = surge("run", "scenarios/validation/mm1.yaml", "--scale", "3", "--set", "run.duration_s=300", "--out",
              str(out), "--no-report")
    assert p.returncode == 0, p.stderr
    import yaml

    sc = yaml.safe_load((out / "scenario.yaml").read_text())
    assert sc["arrivals"]["scale"] == 3.0 and sc["services"]["tools"]["server"]["concurrency"] == 3


def test_the_fleet_engines_adaptive_step_from_the_command_line(tmp_path: Path) -> None:
    """`--fleet-max-dt` reaches the fleet engine: a quiet 10-minute smoke run at a 0.25 s step
    takes fewer steps than the 2,400 a fixed step needs, and its results say so."""
    out = tmp_path / "adaptive"
    p = surge("run", "scenarios/smoke.yaml", "--engine", "fleet", "--fleet-dt", "0.25", "--fleet-max-dt", "1",
              "--set", "run.duration_s=600", "--no-report", "--out", str(out))
    assert p.returncode == 0, p.stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["fleet_dt_s"] == 0.25 and meta["fleet_max_dt_s"] == 1.0
    assert meta["fleet_steps"] < 600 / 0.25
