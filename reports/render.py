"""`render_report`: one run (or replications folder) -> report.html, report.md, summary.json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reports import tables
from reports.derived import write_json
from reports.document import Document, Figure
from reports.figures import build_figures
from reports.plot import Run, png_bytes
from reports.runs import RunSet, load_runset
from sim import stats


def render_report(run_dir: str | Path, out_dir: str | Path | None = None,
                  warmup_s: float | None = None) -> Path:
    """Write report.html (self-contained), report.md (+ fig-*.png) and summary.json for a run
    folder or a replications folder, into `out_dir` (default: the run folder itself).

    `warmup_s` (seconds) overrides the scenario's warm-up for KPIs and SLO verdicts.
    Returns the path of report.html. Raises sim.errors.ResultsError for a missing or bad folder."""
    rs = load_runset(run_dir, warmup_s=warmup_s)
    out = Path(out_dir) if out_dir is not None else rs.path
    doc = Document(f"surge report — {rs.pooled.meta.get('scenario', rs.label)}", facts(rs))
    add_kpis(doc, rs)
    add_slos(doc, rs.pooled.summary.get("slos", []))
    doc.heading("Figures")
    for fig in render_figures([(rs.label, rs.pooled)], prefix="fig"):
        doc.figure(fig)
    if not rs.is_replications:
        add_outage(doc, rs)
    html_path, _ = doc.write(out, "report")
    write_json(out / "summary.json", summary_json(rs))
    return html_path


def add_outage(doc: Document, rs: RunSet) -> None:
    """When the run folder holds a metastability analysis that found an outage: its verdict and
    the trigger / sustaining effect / recovery figure."""
    path = rs.path / "metastability.json"
    if not path.is_file():
        return
    analysis = json.loads(path.read_text())
    if analysis.get("onset_s") is None:
        return
    from reports.campaign import outage_figure
    from sim.campaign import format_analysis

    doc.heading("Outage and recovery")
    doc.text(format_analysis(analysis))
    png = outage_figure(rs.path, analysis, start_hour=rs.pooled.meta.get("start_hour"))
    doc.figure(Figure("fig-outage.png", "Outage: trigger, sustaining effect, recovery",
                      "Offered vs good vs attempts; gateway queue and LLM batch fill; logins. "
                      "Faults shaded; onset, trigger end and recovery marked.", png.read_bytes()))


def facts(rs: RunSet) -> list[tuple[str, str]]:
    """The 'what ran' line under the title."""
    m = rs.pooled.meta
    seeds = m.get("seed")
    out = [("run", rs.label), ("source", str(m.get("source", "?")))]
    if rs.is_replications:
        out.append(("replications", f"{len(rs.reps)} (seeds {_seed_range(seeds)})"))
    else:
        out.append(("seed", str(seeds)))
    dur = m["n_intervals"] * m["interval_s"]
    out += [("duration", f"{dur:g} s"), ("interval", f"{m['interval_s']:g} s"),
            ("warm-up", f"{float(m.get('warmup_s', 0) or 0):g} s (excluded from KPIs)")]
    return out


def _seed_range(seeds: Any) -> str:
    if isinstance(seeds, list) and seeds and all(isinstance(s, int) for s in seeds):
        return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[0] + len(seeds))) else str(seeds)
    return str(seeds)


def add_kpis(doc: Document, rs: RunSet) -> None:
    doc.heading("Key figures")
    if rs.replications is not None:
        rep = rs.replications
        doc.text(f"Mean over {rep['n']} independent replications with its "
                 f"{100 * rep['confidence']:g}% confidence interval (Student t, n−1 degrees of freedom); "
                 f"KPIs over the window after {rep['warmup_s']:g} s of warm-up.")
        doc.table(tables.replication_table(rep))
    else:
        doc.text(f"KPIs over the {rs.pooled.summary.get('window_s', 0):g} s after warm-up. "
                 "Latencies are of completed commands; success rate = succeeded / ended.")
        doc.table(tables.kpi_table(stats.kpis(rs.pooled.summary)))


def add_slos(doc: Document, verdicts: Sequence[dict[str, Any]]) -> None:
    doc.heading("SLOs")
    if not verdicts:
        doc.text("The scenario defines no SLOs.")
        return
    failed = [v for v in verdicts if not v["pass"]]
    doc.text(f"{len(verdicts) - len(failed)} of {len(verdicts)} SLO targets met"
             + (f"; FAILED: {', '.join(v['class'] + ' ' + v['slo'] for v in failed)}." if failed else ".")
             + " Margin = room left as a fraction of the target (negative = missed by).")
    doc.table(tables.slo_table(verdicts))


def render_figures(runs: Sequence[Run], prefix: str) -> list[Figure]:
    """Every applicable figure as PNG bytes named `{prefix}-{key}.png`."""
    out = []
    for spec, fig in build_figures(runs):
        out.append(Figure(f"{prefix}-{spec.key}.png", spec.title, spec.caption, png_bytes(fig)))
    return out


def summary_json(rs: RunSet) -> dict[str, Any]:
    """summary.json: the run's summary plus flat KPIs, and the replication CIs when there are some."""
    out = {**rs.pooled.summary, "kpis": stats.kpis(rs.pooled.summary)}
    if rs.replications is not None:
        out["replications"] = rs.replications
    return out
