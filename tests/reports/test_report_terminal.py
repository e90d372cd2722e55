"""print_summary: the compact table `surge run` ends with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console

from reports.terminal import print_summary
from sim.results import Results


def test_summary_table_shows_kpis_and_verdicts(slo_fail_run: Path) -> None:
    con = Console(record=True, width=120)
    print_summary(Results.read(slo_fail_run), console=con)
    text = con.export_text()
    assert "e2e p99" in text and "FAIL" in text and "PASS" in text and "≤ 500 ms" in text
    assert "e2e_p99_s" not in text  # readable labels, not KPI ids


def test_summary_of_replications_and_of_summary_json(reps_slow: Path, slo_fail_run: Path, tmp_path: Path) -> None:
    from reports import render_report

    render_report(reps_slow, tmp_path)
    con = Console(record=True, width=120)
    print_summary(json.loads((tmp_path / "summary.json").read_text())["replications"], console=con)
    assert "±95% CI" in con.export_text()
    con = Console(record=True, width=120)
    print_summary(json.loads((slo_fail_run / "summary.json").read_text()), console=con)
    assert "success rate" in con.export_text()


def test_terminal_does_not_import_matplotlib() -> None:
    import subprocess

    code = "import reports.terminal, reports.check, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
