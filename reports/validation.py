"""The validation report: the simulator's predictions against the stack's measurements at every load.

Reads what `loadtest.validate` computed (`validation.json`: the error table of
`loadtest.accuracy`, the capacity searches, the calibration, the machine's load) and never runs
anything. Writes `validation.html` (self-contained) and `validation.md` (figures as PNGs next to
it) with: the verdict, the error table per class (one column per load), maximum sustainable
throughput, the outcome at overload, recovery after the fault, MAPE, and one figure per metric:
predicted and measured against load, with 95% intervals over the seeds.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure as MplFigure  # noqa: E402

from reports.document import Document, Figure  # noqa: E402
from reports.tables import Table  # noqa: E402

NAMES = {"ttft.p50": "TTFT p50", "ttft.p99": "TTFT p99", "tpot.p50": "TPOT p50", "tpot.p99": "TPOT p99",
         "e2e.p50": "e2e p50", "e2e.p99": "e2e p99", "goodput_per_s": "goodput", "success_rate": "success rate"}
SIM, MEAS = "#1f77b4", "#d62728"


def _pct(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}%"


def _val(metric: str, x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if metric == "success_rate":
        return f"{100 * x:.2f}%"
    if metric == "goodput_per_s":
        return f"{x:.3g}/s"
    return f"{1e3 * x:.3g} ms" if x < 1 else f"{x:.3g} s"


def _ci(metric: str, ci: dict[str, Any]) -> str:
    hw = ci.get("half_width")
    return _val(metric, ci.get("mean")) + (f" ± {_val(metric, hw).removesuffix('/s')}" if hw is not None
                                           and math.isfinite(hw) else "")


def error_grid(table: dict[str, Any], cls: str) -> Table:
    """Metric x level: the prediction error, with the verdict where the cell is judged."""
    cells = [c for c in table["cells"] if c["class"] == cls]
    levels = list(dict.fromkeys(c["level"] for c in cells))
    rows = []
    for m in NAMES:
        row = [NAMES[m]]
        for lv in levels:
            c = next((x for x in cells if x["level"] == lv and x["metric"] == m), None)
            if c is None:
                row.append("–")
                continue
            mark = "" if c["pass"] is None else (" ✓" if c["pass"] else " ✗")
            row.append(_pct(c["error"]) + mark)
        rows.append(row)
    return ["metric", *levels], rows


def detail_table(table: dict[str, Any]) -> Table:
    """Every cell: both sides with their 95% intervals over seeds, the error and its interval."""
    rows = []
    for c in table["cells"]:
        lo, hi = c["error_low"], c["error_high"]
        band = f"[{_pct(lo)}, {_pct(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else "–"
        verdict = "–" if c["pass"] is None else ("PASS" if c["pass"] else "FAIL")
        target = "–" if c["target"] is None else f"±{100 * c['target']:.0f}%"
        rows.append([c["level"], c["class"], NAMES[c["metric"]], _ci(c["metric"], c["sim"]), _ci(c["metric"], c["meas"]),
                     _pct(c["error"]), band, target, verdict])
    return ["load", "class", "metric", "simulated", "measured", "error", "error 95% CI (paired)", "target", "verdict"], rows


def summary_rows(table: dict[str, Any]) -> Table:
    """The headline figures: capacity, overload outcome, recovery, MAPE."""
    rows = []
    cap = table.get("capacity")
    if cap:
        how = "" if cap.get("measured_search", True) else " (measured capacity given, not searched)"
        rows.append(["maximum sustainable throughput", f"{cap['sim_per_s']:.4g}/s", f"{cap['meas_per_s']:.4g}/s" + how,
                     _pct(cap["error"]), f"±{100 * cap['target']:.0f}%", "PASS" if cap["pass"] else "FAIL"])
    for o in table["overload"]:
        rows.append([f"outcome at {o['level']}", str(o["sim_outcome"]), str(o["meas_outcome"]), "–", "same",
                     "PASS" if o["pass"] else "FAIL"])
    for r in table["recovery"]:
        rows.append(["recovery after the fault", _secs(r["sim_s"]), _secs(r["meas_s"]), _pct(r["error"]),
                     f"±{100 * r['target']:.0f}%", "PASS" if r["pass"] else "FAIL"])
    rows.append(["MAPE, judged latency cells (TTFT, e2e; loads ≤ 90%)", "", "", f"{100 * table['mape_judged']:.1f}%",
                 "", ""])
    rows.append(["MAPE, every latency cell (incl. TPOT) at every load", "", "", f"{100 * table['mape_latency']:.1f}%",
                 "", ""])
    return ["figure", "simulated", "measured", "error", "target", "verdict"], rows


def _secs(xs: list[float | None]) -> str:
    return ", ".join("not recovered" if x is None else f"{x:.0f} s" for x in xs)


def metric_figure(table: dict[str, Any], metric: str) -> Figure:
    """One panel per class: simulated and measured against load (fraction of measured capacity),
    with 95% intervals over the seeds as error bars."""
    classes = table["classes"]
    fig = MplFigure(figsize=(4.2 * len(classes), 3.2), dpi=96, layout="constrained")
    axes = fig.subplots(1, len(classes), squeeze=False)[0]
    for ax, cls in zip(axes, classes, strict=True):
        cells = sorted((c for c in table["cells"] if c["class"] == cls and c["metric"] == metric
                        and c["kind"] in ("load", "overload")), key=lambda c: c["fraction"])
        x = [100 * c["fraction"] for c in cells]
        for side, colour, name in (("sim", SIM, "simulated"), ("meas", MEAS, "measured")):
            y = [c[side]["mean"] for c in cells]
            err = [c[side]["half_width"] if math.isfinite(c[side]["half_width"]) else 0.0 for c in cells]
            scale = 1e3 if metric not in ("goodput_per_s", "success_rate") else (100 if metric == "success_rate" else 1)
            ax.errorbar(x, [v * scale for v in y], yerr=[e * scale for e in err], color=colour, marker="o",
                        capsize=3, label=name)
        ax.set_title(cls, loc="left")
        ax.set_xlabel("load, % of measured max. sustainable throughput")
        ax.set_ylabel({"goodput_per_s": "commands/s", "success_rate": "%"}.get(metric, "ms"))
        ax.axvline(100, color="#999", lw=0.8, ls=":")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{NAMES[metric]}: predicted and measured against load", fontsize=11, fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Figure(f"validation-{metric.replace('.', '_')}.png", f"{NAMES[metric]} against load",
                  "Mean over the seeds with its 95% interval; the dotted line is the measured capacity.",
                  buf.getvalue())


def document(data: dict[str, Any]) -> Document:
    """The whole report as a `Document`."""
    table = data["table"]
    cal = data.get("calibration") or {}
    doc = Document(f"Simulator against the stack: {data.get('scenario')}", facts=_facts(data))
    verdict = "All targets met" if table["met"] else f"{len(table['misses'])} targets missed"
    lines = [f"{verdict}; MAPE of the judged latency cells {100 * table['mape_judged']:.1f}%.", *table["misses"][:8]]
    doc.callout(lines + (["…"] if len(table["misses"]) > 8 else []), bool(table["met"]))
    doc.heading("Calibrated, then predicted")
    doc.text(_calibration_text(cal, data))
    doc.heading("Headline figures")
    doc.table(summary_rows(table))
    for cls in table["classes"]:
        doc.heading(f"Prediction error per load: {cls}")
        doc.text("Error = simulated / measured − 1 (+: the simulator predicts more). ✓/✗: judged against the "
                 "target (TTFT and e2e: p50 ±5%, p99 ±10% up to 90% load, a trace replay too; goodput ±10% at "
                 "overload).")
        doc.table(error_grid(table, cls))
    for m in NAMES:
        doc.figure(metric_figure(table, m))
    doc.heading("Every cell")
    doc.table(detail_table(table))
    return doc


def _calibration_text(cal: dict[str, Any], data: dict[str, Any]) -> str:
    cm = cal.get("cost_model") or {}
    coef = ", ".join(f"{k} {v:.3g}" for k, v in cm.items() if isinstance(v, int | float))
    hc = cal.get("host") or {}
    host = hc.get("host")
    used = (f"The LLM cost model was fitted once ({cal.get('how')}; R² {cal.get('r2', math.nan):.2f}): {coef}."
            if cal.get("calibrated") else f"The scenario's cost model was taken as calibrated: {coef}.")
    if host:
        terms = ", ".join(f"{k} {1e3 * v:.3g} ms" for k, v in host.items() if k.endswith("_cpu_s"))
        used += (f" The stack's CPU outside the LLM's steps (services.host: {host.get('cores'):g} core(s) shared by "
                 f"the steps and the rest) was measured once on the running stack, one request at a time: {terms}.")
        if "core_share" in hc:
            used += (f" Of its {hc.get('cores_pinned')} pinned core(s) {100 * hc['core_share']:.0f}% was free at "
                     "calibration (a spinning thread's CPU over wall clock; other processes took the rest).")
    return (used + " Nothing was fitted to any load run: every figure in the tables and plots below is a "
            "prediction of the simulator, run with the same seeds (hence the same arrival instants) as the "
            "load test it is compared with.")


def _facts(data: dict[str, Any]) -> list[tuple[str, str]]:
    o = data.get("options") or {}
    cores = data.get("cores") or {}
    loads = [r["load_average_1m"] for r in data.get("runs") or [] if "load_average_1m" in r]
    free = [r["core_share"] for r in data.get("runs") or [] if "core_share" in r]
    trace = data.get("trace")
    facts = [("seeds", f"{data.get('seed')} … (+{int(o.get('repeats', 1)) - 1})"),
             ("each load run", f"{o.get('duration_s', 0):g} s (warm-up {o.get('warmup_s', 0):g} s)"),
             ("cores", f"stack {cores.get('stack')}, Locust {cores.get('locust')}"),
             ("load average (1 min) at start / end", f"{data.get('started', {}).get('load_average_1m', math.nan):.2f}"
                                                     f" / {data.get('ended', {}).get('load_average_1m', math.nan):.2f}"),
             ("load average (1 min) before each run", f"{min(loads):.2f} to {max(loads):.2f}" if loads else "–"),
             ("stack's core free before each run", f"{100 * min(free):.0f}% to {100 * max(free):.0f}%" if free else "–")]
    if trace:
        facts.append(("trace replayed", f"{trace['scenario']}: {trace['offered_per_s']:.3g} commands/s (its "
                                        f"arrivals x{trace['multiplier']:.3g})"))
    return facts


def write_validation(data: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """`validation.html` and `validation.md` (with the figures' PNGs) in `out`."""
    return document(data).write(out, "validation")
