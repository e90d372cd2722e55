"""`render_report`: one run (or replications folder) -> report.html, report.md, summary.json.

The report tells the story first: a headline (what happened, when, for how long, what it cost),
the outage figure when there was one, the SLO verdicts, then the KPIs as a class x metric
table, then every figure. Times are on the run's one time axis throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reports import interactive, money, plot, story, tables
from reports.chart import TimeAxis
from reports.derived import write_json
from reports.document import Document, Figure
from reports.figures import Run, build_figures
from reports.loadtest import add_loadtest
from reports.runs import RunSet, load_runset
from sim import stats
from sim.results import clock as C


def render_report(run_dir: str | Path, out_dir: str | Path | None = None,
                  warmup_s: float | None = None) -> Path:
    """Write report.html (self-contained), report.md (+ fig-*.png) and summary.json for a run
    folder or a replications folder, into `out_dir` (default: the run folder itself).

    `warmup_s` (seconds) overrides the scenario's warm-up for KPIs and SLO verdicts.
    Returns the path of report.html. Raises sim.errors.ResultsError for a missing or bad folder."""
    rs = load_runset(run_dir, warmup_s=warmup_s)
    out = Path(out_dir) if out_dir is not None else rs.path
    doc = Document(f"surge report — {rs.pooled.meta.get('scenario', rs.label)}", facts(rs))
    runs: list[Run] = [(rs.label, rs.pooled)]
    sentences = story.headline(rs.reps, rs.pooled)
    top = render_figures(runs, prefix="fig", place="top")
    doc.callout(sentences, ok=not top and all(v["pass"] for v in rs.pooled.summary.get("slos", [])))
    if top:
        doc.heading("Outage and recovery")
        for fig in top:
            doc.figure(fig)
        if not rs.is_replications:
            doc.text(amplification(story.analysis(rs.pooled)))
    add_slos(doc, rs.pooled.summary.get("slos", []))
    add_kpis(doc, rs)
    if rs.pooled.meta.get("source") == "loadtest":
        add_loadtest(doc, rs.pooled)
    money.add_sections(doc, rs.pooled.summary, rs.pooled.meta)
    doc.heading("Figures")
    for fig in render_figures(runs, prefix="fig", place="body"):
        doc.figure(fig)
    html_path, _ = doc.write(out, "report")
    write_json(out / "summary.json", summary_json(rs))
    return html_path


def amplification(a: dict[str, Any]) -> str:
    """What kept it down, in numbers (the analysis's amplification)."""
    logins = a["logins_per_command_degraded"]
    return (f"While degraded the clients sent {a['attempts_per_command_degraded']:.2f} attempts per command "
            f"({a['attempts_per_command']:.2f} over the whole run) and {a['work_per_good_degraded']:,.3g} attempts "
            f"were admitted per good result ({a['work_per_good']:.3g} over the run)"
            + (f"; {logins:.2f} logins per command." if logins and logins == logins else "."))


def facts(rs: RunSet) -> list[tuple[str, str]]:
    """The 'what ran' line under the title."""
    m = rs.pooled.meta
    seeds = m.get("seed")
    out = [("run", rs.label), ("source", str(m.get("source", "?")))]
    if rs.is_replications:
        out.append(("replications", f"{len(rs.reps)} (seeds {_seed_range(seeds)})"))
    else:
        out.append(("seed", str(seeds)))
    axis = TimeAxis.of(rs.pooled)
    when = f"{axis.span(0.0, axis.run_s)} ({C.duration(axis.run_s)})" if axis.start_hour is not None \
        else C.duration(axis.run_s)
    warm = float(m.get("warmup_s", 0) or 0)
    out += [("time", when), ("interval", C.duration(m["interval_s"])),
            ("warm-up", f"{C.duration(warm)} (excluded from KPIs)" if warm else "none")]
    return out


def _seed_range(seeds: Any) -> str:
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds):
        return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[0] + len(seeds))) else str(seeds)
    return str(seeds)


def add_kpis(doc: Document, rs: RunSet) -> None:
    doc.heading("Key figures")
    classes = list(rs.pooled.meta.get("classes", []))
    if rs.replications is not None:
        rep = rs.replications
        doc.text(f"Mean over {rep['n']} independent replications ± the half-width of its "
                 f"{100 * rep['confidence']:g}% confidence interval (Student t, n−1 degrees of freedom); "
                 f"KPIs over the window after {C.duration(rep['warmup_s'])} of warm-up. " + tables.LEGEND)
        doc.table(tables.replication_table(rep, classes))
    else:
        doc.text(f"KPIs over the {C.duration(rs.pooled.summary.get('window_s', 0))} after warm-up. Latencies are of "
                 "completed commands; success rate = succeeded / ended. " + tables.LEGEND)
        doc.table(tables.kpi_table(stats.kpis(rs.pooled.summary), classes))


def add_slos(doc: Document, verdicts: Sequence[dict[str, Any]]) -> None:
    doc.heading("SLOs")
    if not verdicts:
        doc.text("The scenario defines no SLOs.")
        return
    doc.text("Margin = room left as a fraction of the target (negative = missed by).")
    doc.table(tables.slo_table(verdicts))


def render_figures(runs: Sequence[Run], prefix: str, place: str | None = None) -> list[Figure]:
    """Every applicable figure as PNG bytes named `{prefix}-{key}.png`, with an interactive
    version where a planner zooms (reports.interactive)."""
    out = []
    for spec, chart in build_figures(runs, place):
        html = interactive.div(chart) if interactive.worth_it(chart) else None
        out.append(Figure(f"{prefix}-{spec.key}.png", spec.title, spec.caption, plot.png(chart), html))
    return out


def summary_json(rs: RunSet) -> dict[str, Any]:
    """summary.json: the run's summary plus flat KPIs, and the replication CIs when there are some."""
    out = {**rs.pooled.summary, "kpis": stats.kpis(rs.pooled.summary)}
    if rs.replications is not None:
        out["replications"] = rs.replications
    return out
