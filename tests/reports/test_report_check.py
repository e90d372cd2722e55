"""check_run / write_baseline: k6-like thresholds for CI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from reports import BaselineError, check_run, write_baseline
from reports.check import judge


def test_a_run_passes_its_own_baseline(fast_run: Path, tmp_path: Path) -> None:
    base = write_baseline(fast_run, tmp_path / "baseline.yaml")
    assert yaml.safe_load(base.read_text())["kpis"]["job.e2e_p99_s"]["tolerance"] == 0.1
    md, ok = check_run(fast_run, base)
    assert ok and md.startswith("**surge check: PASS**") and "REGRESSION" not in md


def test_a_slower_run_is_a_regression(fast_run: Path, slo_fail_run: Path, tmp_path: Path) -> None:
    base = write_baseline(fast_run, tmp_path / "baseline.json")
    md, ok = check_run(slo_fail_run, base)
    assert not ok and md.startswith("**surge check: FAIL**")
    row = next(line for line in md.splitlines() if line.startswith("| `job.e2e_p99_s`"))
    assert row.rstrip().endswith("REGRESSION |")


def test_replications_baseline_and_check(reps_slow: Path, reps_fast: Path, tmp_path: Path) -> None:
    base = write_baseline(reps_slow, tmp_path / "b.yaml")
    assert check_run(reps_slow, base)[1]
    md, ok = check_run(reps_fast, base)  # faster: better latency is not a regression
    assert ok and "OK (improved)" in md and "mean of 5 replications" in md


@pytest.mark.parametrize(("lim", "actual", "verdict"), [
    ({"value": 1.0, "tolerance": 0.1}, 1.09, "OK"),
    ({"value": 1.0, "tolerance": 0.1}, 1.11, "REGRESSION"),
    ({"value": 1.0, "tolerance": "10%"}, 0.5, "OK (improved)"),
    ({"value": 1.0, "tolerance_abs": 0.2, "direction": "both"}, 0.7, "REGRESSION"),
    ({"max": 2.0}, 2.5, "REGRESSION"),
    ({"min": 0.1, "max": 2.0}, 1.0, "OK"),
    ({"value": 1.0, "tolerance": 0.1}, math.nan, "REGRESSION"),
])
def test_judge_latency_limits(lim: dict, actual: float, verdict: str) -> None:
    assert judge("chat.e2e_p99_s", lim, actual)[0] == verdict


def test_judge_rates_fail_downwards() -> None:
    assert judge("success_rate", {"value": 0.99, "tolerance_abs": 0.01}, 0.975)[0] == "REGRESSION"
    assert judge("success_rate", {"value": 0.99, "tolerance_abs": 0.01}, 1.0)[0] == "OK"


@pytest.mark.parametrize(("text", "message"), [
    ("kpis: [1, 2", "not valid YAML"),
    ("just a string", "non-empty 'kpis' mapping"),
    ("kpis: {}", "non-empty 'kpis' mapping"),
    ("kpis: {success_rate: {valu: 1}}", "kpis.success_rate: unknown key 'valu'"),
    ("kpis: {success_rate: {tolerance: 0.1}}", "needs 'value'"),
    ("kpis: {success_rate: {value: high}}", "kpis.success_rate.value: expected a number"),
    ("kpis: {success_rate: {value: 1, tolerance: -1}}", "expected a finite number >= 0"),
    ("kpis: {success_rate: {value: 1, direction: up}}", "direction: expected lower, higher or both"),
])
def test_bad_baselines_name_file_and_field(fast_run: Path, tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "b.yaml"
    f.write_text(text)
    with pytest.raises(BaselineError, match=message):
        check_run(fast_run, f)


def test_missing_baseline_file(fast_run: Path, tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no such baseline file"):
        check_run(fast_run, tmp_path / "none.yaml")


def test_a_kpi_the_run_lacks_fails(fast_run: Path, tmp_path: Path) -> None:
    f = tmp_path / "b.yaml"
    f.write_text("kpis: {chat.ttft_p99_s: {max: 1}}\n")
    md, ok = check_run(fast_run, f)
    assert not ok and "KPI missing" in md
