"""render_report on small real runs: every figure embedded, tables with the right verdicts."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from reports import render_report
from reports.figures import FIGURES
from sim.errors import ResultsError

PNG = b"\x89PNG\r\n\x1a\n"


def _images(html: str) -> dict[str, bytes]:
    """alt text -> decoded PNG for every embedded image."""
    found = re.findall(r'<img alt="([^"]+)"[^>]*src="data:image/png;base64,([^"]+)"', html)
    return {alt: base64.b64decode(data) for alt, data in found}


def test_agent_run_report_embeds_every_figure(smoke_run: Path, tmp_path: Path) -> None:
    out = render_report(smoke_run, tmp_path)
    html = out.read_text()
    images = _images(html)
    assert set(images) == {f.title for f in FIGURES if f.place == "body"}  # 75% of the LLM lost: slow, not down
    assert all(png.startswith(PNG) and len(png) > 10_000 for png in images.values())
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing to fetch
    md = (tmp_path / "report.md").read_text()
    for f in FIGURES[1:]:
        assert f"![{f.title}](fig-{f.key}.png)" in md
        assert (tmp_path / f"fig-{f.key}.png").read_bytes().startswith(PNG)
    assert "fault 300–450 s: capacity_loss 75% on llm" not in html  # figures carry it, not the text
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["kpis"]["chat.e2e_p99_s"] > 0 and "slos" in summary


def test_figures_without_their_series_are_skipped(slo_fail_run: Path, tmp_path: Path) -> None:
    images = _images(render_report(slo_fail_run, tmp_path).read_text())
    assert "LLM fleet" not in images  # no LLM in an M/M/1 queue
    assert {"Offered load vs admitted vs goodput", "Latency percentiles over time, per command class",
            "Service queues and utilisation"} <= set(images)
    assert not (tmp_path / "fig-llm.png").exists()


def test_slo_table_verdicts_for_a_scenario_built_to_fail_one(slo_fail_run: Path, tmp_path: Path) -> None:
    render_report(slo_fail_run, tmp_path)
    md = (tmp_path / "report.md").read_text()
    e2e = next(line for line in md.splitlines() if line.startswith("| job | e2e p99"))
    ok = next(line for line in md.splitlines() if line.startswith("| job | success rate"))
    assert "FAIL" in e2e and "≤ 500 ms" in e2e and "-2" in e2e.split("|")[-2]  # missed by ~200%
    assert "PASS" in ok
    assert re.search(r"SLOs: 1 of 2 met; missed: job e2e p99 1\.\d+ s \(target ≤ 500 ms\)\.", md)
    html = (tmp_path / "report.html").read_text()
    assert '<td class="fail">FAIL</td>' in html and '<td class="pass">PASS</td>' in html


def test_report_defaults_to_the_run_folder(fast_run: Path) -> None:
    assert render_report(fast_run) == fast_run / "report.html"
    assert "SLOs: 2 of 2 met." in (fast_run / "report.md").read_text()


def test_replications_folder_reports_confidence_intervals(reps_slow: Path, tmp_path: Path) -> None:
    render_report(reps_slow, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Mean over 5 independent replications ± the half-width of its 95% confidence interval" in md
    assert "replications**: 5 (seeds 101–105)" in md
    lines = md.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| class | success rate |"))
    header, row = lines[at], lines[at + 2]
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert " ± " in cells[" e2e p99 "] and cells[" e2e p99 "].strip().endswith("s")
    rep = json.loads((tmp_path / "summary.json").read_text())["replications"]
    assert rep["n"] == 5 and rep["format"] == "surge-replications/1"


def test_hand_filled_fixture_draws_cards_and_failures(fixture_run: Path, tmp_path: Path) -> None:
    images = _images(render_report(fixture_run, tmp_path).read_text())
    assert set(images) == {f.title for f in FIGURES if f.place == "body"}


def test_warmup_override_changes_the_window(slo_fail_run: Path, tmp_path: Path) -> None:
    render_report(slo_fail_run, tmp_path, warmup_s=300)
    assert json.loads((tmp_path / "summary.json").read_text())["window_s"] == 300


def test_missing_folder_is_a_one_line_results_error(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such results folder"):
        render_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="not a results folder"):
        render_report(tmp_path / "empty")


def test_money_at_risk_and_inventory_sections_state_the_runs_counts(fixture_run: Path, tmp_path: Path) -> None:
    """The report's Money at risk rows are the summary's counts after warm-up (the fixture draws
    payments, duplicates prevented, failures after payment, refunds and wrong items), and the
    Inventory table names the seat service that sold out."""
    render_report(fixture_run, tmp_path)
    md = (tmp_path / "report.md").read_text()
    money = json.loads((tmp_path / "summary.json").read_text())["money"]
    assert money["payments"] > 0 and money["duplicates_prevented"] > 0 and money["failed_after_payment"] > 0
    section = md.split("Money at risk", 1)[1]
    for key, words in (("payments", "payments charged"), ("duplicates_prevented", "payments prevented"),
                       ("failed_after_payment", "failed after their order was paid"), ("refunds", "orders refunded")):
        row = next(line for line in section.splitlines() if line.startswith("|") and words in line)
        assert f"{money[key]:,.0f}" in row, (key, row)
    inventory = md.split("Inventory", 1)[1].split("Money at risk", 1)[0]
    assert "seats" in inventory
