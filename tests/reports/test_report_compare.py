"""compare_runs: overlaid figures, differences, paired CIs over common random numbers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports import compare_runs
from sim.errors import ResultsError


def test_replications_with_shared_seeds_get_paired_cis(reps_slow: Path, reps_fast: Path, tmp_path: Path) -> None:
    out = compare_runs([reps_slow, reps_fast], tmp_path / "cmp")
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert out.name == "compare.html" and "95% CI (paired)" in md
    row = next(line for line in md.splitlines() if line.startswith("| job · e2e p99 |"))
    assert "better" in row  # a 25% faster server: p99 lower, significantly
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    d = data["differences"][0]
    assert d["paired"] is True and d["ci"]["job.e2e_p99_s"]["high"] < 0
    assert "Latency percentiles over time, per command class" in out.read_text()


def test_single_runs_compare_without_cis(slo_fail_run: Path, fast_run: Path, tmp_path: Path) -> None:
    compare_runs([slo_fail_run, fast_run], tmp_path, labels=["slow", "fast"])
    md = (tmp_path / "compare.md").read_text()
    assert "| KPI | slow | fast | fast − slow | change |" in md
    assert "single run(s), no confidence interval" in md
    slo = next(line for line in md.splitlines() if line.startswith("| job | e2e p99"))
    assert "FAIL" in slo and "PASS" in slo
    assert (tmp_path / "compare-load.png").is_file()


def test_compare_needs_two_folders(slo_fail_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="at least two"):
        compare_runs([slo_fail_run], tmp_path)


def test_a_measured_runs_units_sold_come_from_its_stacks_ledger() -> None:
    """The load test records no stock series; the comparison shows the stack's database count."""
    from reports import money

    sim = {"money": {"payments": 36.0}, "inventory": {"seats": {"sold": 72.0, "holds": 36.0}}}
    measured = {"money": {"payments": 28.0}}
    ledger = {"inventory": {"seats": {"stock": 72, "sold": 68, "held": 4, "free": 0}}}
    table = money.side_by_side(["simulation", "measurement"], [sim, measured], [None, ledger])
    assert table is not None
    rows = {r[0]: r[1:] for r in table[1]}
    assert rows["seats: sold"] == ["72", "68 (stack ledger, end of run)"]
    assert rows["seats: holds"] == ["36", "–"]
    assert rows["payments charged (a second charge of one order counts again)"] == ["36", "28"]
