"""The report tells the story first: a headline from a real outage run, one number for time to
recover everywhere, one time axis, fault bands that show however short, no empty panels,
readable KPI labels, and comparisons that say what differs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from rich.console import Console

from reports import compare_runs, render_report
from reports.chart import FAULT_COLOUR, MIN_BAND_FRACTION
from reports.figures import build_figures
from reports.plot import figure
from reports.story import analysis
from reports.terminal import print_summary
from sim.campaign import format_analysis, losses
from sim.results import Results
from sim.results import clock as C
from sim.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[2]
TTR = re.compile(r"[Tt]ime to recover:? (\d+ h(?: \d+ min)?|\d+ min(?: \d+ s)?|\d+ s)")


@pytest.mark.slow
@pytest.mark.regression  # the README's account of the Feb 8 outage (seed 8)
def test_feb8_headline_says_when_how_long_and_what_it_cost(feb8_run: Path, tmp_path: Path) -> None:
    render_report(feb8_run, tmp_path)
    md = (tmp_path / "report.md").read_text()
    head = md[:md.index("## ")]  # everything before the first section: title, facts, headline
    assert "Outage: goodput fell below 50% of offered commands at 14:27; down 4 h 23 min in all." in head
    assert "Time to recover 2 h 46 min: the trigger ended at 16:04" in head and "back at 90% of offered at 18:50" in head
    r = Results.read(feb8_run)
    cost = losses(r, load_scenario(ROOT / "scenarios" / "feb8_outage.yaml"))
    assert 500 < cost["orders_lost"] < 2000  # the analysis, not this test, counts them
    assert f"{cost['orders_lost']:,.0f} of {cost['orders_wanted']:,.0f} orders lost" in head
    assert f"{cost['orders_lost_full_scale'] / 1e6:.3g} M orders lost" in head  # at full scale: / population.scale
    assert "F1 session invalidation 90% on auth, 14:20–14:21" in head
    # the outage figure comes first, before the SLO table and the KPIs
    assert md.index("![Outage: trigger, sustaining loop and recovery]") < md.index("## SLOs") < md.index("## Key figures")


@pytest.mark.slow
def test_time_to_recover_is_one_number_in_report_terminal_and_analysis(feb8_run: Path, tmp_path: Path) -> None:
    r = Results.read(feb8_run)
    a = analysis(r)
    want = C.duration(a["time_to_recover_s"])
    render_report(feb8_run, tmp_path)
    con = Console(record=True, width=200)
    print_summary(r, console=con)
    texts = {"report": (tmp_path / "report.md").read_text(), "html": (tmp_path / "report.html").read_text(),
             "terminal": con.export_text(), "analysis": format_analysis(a)}
    for where, text in texts.items():
        found = set(TTR.findall(text))
        assert found == {want}, (where, found)
    other = C.duration(a["down_after_trigger_s"])  # the number the figure's title used to state
    assert other != want and all(other not in text for text in texts.values())


@pytest.mark.slow
def test_a_one_minute_fault_is_drawn_visibly_on_a_13_hour_axis(feb8_run: Path) -> None:
    r = Results.read(feb8_run)
    charts = dict((spec.key, c) for spec, c in build_figures([("feb8", r)]))
    load = charts["load"]
    (band,) = load.bands
    assert band.end_s - band.start_s == 60 and band.tag == "F1"
    fig = figure(load)
    fig.canvas.draw()
    top = fig.axes[0]
    spans = [p for p in top.patches if to_hex(p.get_facecolor()) == FAULT_COLOUR]
    assert len(spans) == 1
    width_px = spans[0].get_window_extent().width
    plot_px = top.get_window_extent().width
    assert width_px >= MIN_BAND_FRACTION * plot_px * 0.99 and width_px >= 4  # 60 s of 13 h would be < 1 px
    assert any(t.get_text() == "F1" for t in top.texts)
    assert any(lab.startswith("F1 14:20–14:21") for lab in top.get_legend_handles_labels()[1])
    # the time axis is the clock: 12:00 ... 00:00, in every figure
    for c in charts.values():
        f = figure(c)
        f.canvas.draw()
        ticks = [t.get_text() for t in f.axes[-1].get_xticklabels() if t.get_text()]
        assert ticks and all(re.fullmatch(r"\d\d:\d\d", t) for t in ticks), (c.key, ticks)


@pytest.mark.slow
def test_empty_panels_are_left_out(feb8_run: Path, smoke_run: Path) -> None:
    r = Results.read(feb8_run)
    assert not r.series["llm_kv_frac"].any() and not r.series["llm_preemptions"].any()  # nothing to draw there
    for run in (r, Results.read(smoke_run)):
        for spec, c in build_figures([("run", run)]):
            fig = figure(c)
            for ax, p in zip(fig.axes, c.panels, strict=False):
                ys = [np.asarray(ln.get_ydata(), dtype=float) for ln in ax.get_lines()] + \
                     [np.asarray(coll.get_paths()[0].vertices[:, 1]) for coll in ax.collections if coll.get_paths()]
                assert any(np.nan_to_num(y).any() for y in ys), (spec.key, p.title)
    llm = dict((s.key, c) for s, c in build_figures([("feb8", r)]))["llm"]
    assert [p.title for p in llm.panels] == ["Batch size (mean sequences per step)", "Token throughput"]


def test_kpis_are_readable_labels_in_a_class_by_metric_table(smoke_run: Path, tmp_path: Path) -> None:
    render_report(smoke_run, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "| class | success rate | goodput | attempts / command | e2e p50 | e2e p99 | TTFT p99 | TPOT p99 |" in md
    rows = [line for line in md.splitlines() if line.startswith(("| chat |", "| help_me_buy |", "| all classes |"))]
    assert len(rows) >= 3
    assert not re.search(r"\b[a-z_]+\.(e2e|ttft|tpot)_p\d\d_s\b|success_rate|goodput_per_s", md)  # no KPI ids


def test_compare_states_what_differs_and_cost(slo_fail_run: Path, fast_run: Path, tmp_path: Path) -> None:
    compare_runs([slo_fail_run, fast_run], tmp_path, labels=["slow", "fast"])
    md = (tmp_path / "compare.md").read_text()
    section = md[md.index("## What differs"):md.index("## Cost and efficiency")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows == ["| `services.tools.server.latency.rate` | 8 | 16 |"]  # the --set that made it fast, nothing else
    cost = md[md.index("## Cost and efficiency"):md.index("## Key figures")]
    assert "good commands (within e2e SLO)" in cost and "| slow | fast |" in cost


def test_interactive_timelines_only_where_a_planner_zooms(smoke_run: Path, tmp_path: Path) -> None:
    html = render_report(smoke_run, tmp_path).read_text()
    assert "plotly" not in html.lower()  # 20 intervals: the PNGs show every one
    assert "<img" in html


@pytest.mark.slow
def test_feb8_report_has_zoomable_timelines_inline(feb8_run: Path, tmp_path: Path) -> None:
    html = render_report(feb8_run, tmp_path).read_text()
    assert html.count("<script type=\"text/javascript\">") == 1  # plotly's JavaScript, once, inline
    assert not re.search(r"https?://", html.split("</script>", 1)[1])  # nothing after the script fetches anything
    assert html.count('class="plotly-graph-div"') == 2  # the outage and load timelines
    assert len(html) < 8_000_000
    md = (tmp_path / "report.md").read_text()
    assert "![Outage: trigger, sustaining loop and recovery](fig-outage.png)" in md  # Markdown keeps PNGs
