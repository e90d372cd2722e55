"""`compare_runs`: several runs or replications folders side by side — what differs between their
scenarios, cost and efficiency, a KPI table with differences against the first (the baseline),
confidence intervals on the differences when both sides are replications (paired when they share
seeds: common random numbers), and overlaid figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reports import money, tables
from reports.chart import COLOUR_NAMES
from reports.derived import write_json
from reports.document import Document
from reports.render import render_figures
from reports.runs import RunSet, load_runset, run_kpis, unique_labels
from reports.story import scenario_of
from sim import stats
from sim.cost import run_cost
from sim.errors import ResultsError


def compare_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, labels: Sequence[str] | None = None,
                 warmup_s: float | None = None) -> Path:
    """Write compare.html (self-contained), compare.md (+ compare-*.png) and comparison.json into
    `out_dir`. The first folder is the baseline every difference is taken against.

    Returns the path of compare.html. Raises ResultsError for fewer than two folders or a bad one."""
    if len(run_dirs) < 2:
        raise ResultsError(f"compare needs at least two run folders (got {len(run_dirs)})")
    paths = [Path(p) for p in run_dirs]
    names = list(labels) if labels else unique_labels(paths)
    sets = [load_runset(p, label=n, warmup_s=warmup_s) for p, n in zip(paths, names, strict=True)]
    data = comparison(sets)
    doc = Document("surge comparison — " + " vs ".join(names),
                   [(f"run {k + 1}", f"{rs.label} ({_kind(rs)})") for k, rs in enumerate(sets)])
    doc.heading("What differs")
    diff = scenario_diff_table(sets)
    if diff[1]:
        doc.text("Settings that differ between the runs' scenarios (scenario.yaml of each run, every field "
                 "resolved); everything else is the same.")
        doc.table(diff)
    else:
        doc.text("The runs' scenarios are the same in every field." if all(rs.pooled.scenario for rs in sets)
                 else "A run folder has no scenario.yaml (written by older versions or an external producer): "
                      "what differs cannot be stated.")
    doc.heading("Cost and efficiency")
    doc.text(_cost_note(sets))
    doc.table(cost_table(sets))
    doc.heading("Key figures")
    doc.text(_method_note(sets) + " " + tables.LEGEND)
    doc.table(kpi_diff_table(sets, data))
    doc.heading("SLOs")
    doc.table(slo_side_by_side(sets))
    stock = money.side_by_side([rs.label for rs in sets], [rs.pooled.summary for rs in sets],
                               [rs.pooled.meta.get("ledger") for rs in sets])
    if stock is not None:
        doc.heading("Inventory and money at risk")
        doc.text("Counts over the window after warm-up. A measured run counts what the answers said (its units sold "
                 "are the stack's database's, at the end); the stack's own ledger of payments, duplicates prevented "
                 "and refunds is in its own report.")
        doc.table(stock)
    doc.heading("Figures")
    doc.text("Colour = run (" + ", ".join(f"{COLOUR_NAMES[k % len(COLOUR_NAMES)]}: {rs.label}" for k, rs in enumerate(sets))
             + "); line style = quantity. Replications are shown as their interval-by-interval mean.")
    for fig in render_figures([(rs.label, rs.pooled) for rs in sets], prefix="compare"):
        doc.figure(fig)
    html_path, _ = doc.write(Path(out_dir), "compare")
    write_json(Path(out_dir) / "comparison.json", {**data, "scenario_differences": scenario_differences(sets),
                                                   "cost": [run_cost(scenario_of(rs.pooled), rs.pooled) for rs in sets]})
    return html_path


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A scenario as key paths: {"services.llm.replicas": 4, "faults[0].at_s": 60, ...}."""
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(tree, list):
        if tree and all(not isinstance(v, dict | list) for v in tree) and len(tree) <= 4:
            return {prefix: tree}
        out = {}
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: tree}


_MISSING = object()


def scenario_differences(sets: Sequence[RunSet]) -> dict[str, list[Any]]:
    """Key path -> each run's value, for the paths whose values differ (absent = None). Empty
    when a run has no scenario.yaml. The seed differs between replications of one run, not
    between runs compared: it is kept."""
    flat = [flatten(rs.pooled.scenario) if rs.pooled.scenario else None for rs in sets]
    if any(f is None for f in flat):
        return {}
    keys = list(dict.fromkeys(k for f in flat for k in f))  # type: ignore[union-attr]
    out = {}
    for k in keys:
        vals = [f.get(k, _MISSING) for f in flat]  # type: ignore[union-attr]
        if any(v != vals[0] for v in vals[1:]):
            out[k] = [None if v is _MISSING else v for v in vals]
    return out


def scenario_diff_table(sets: Sequence[RunSet]) -> tables.Table:
    """setting | each run's value (only the settings that differ)."""
    rows = [[f"`{k}`", *[_value(v) for v in vals]] for k, vals in scenario_differences(sets).items()]
    return ["setting", *[rs.label for rs in sets]], rows


def _value(v: Any) -> str:
    if v is None:
        return "–"
    text = str(v) if not isinstance(v, float) else f"{v:g}"
    return text if len(text) <= 60 else text[:57] + "…"


_COST_ROWS = (  # key of sim.cost.run_cost, label, format
    ("mean_replicas_up", "LLM replicas up (mean)", "{:.3g}"),
    ("replica_hours", "LLM replica-hours", "{:,.3g}"),
    ("gpu_hours", "GPU-hours", "{:,.3g}"),
    ("good_commands", "good commands (within e2e SLO)", "{:,.0f}"),
    ("goodput_per_replica_per_s", "goodput per replica", "{:.3g}/s"),
    ("good_per_gpu_hour", "good commands per GPU-hour", "{:,.0f}"),
    ("cost", "cost", "{:,.2f}"),
    ("cost_per_1k_good", "cost per 1,000 good commands", "{:,.3f}"),
)


def cost_table(sets: Sequence[RunSet]) -> tables.Table:
    """Cost and efficiency per run (`sim.cost.run_cost`, over the post-warm-up window)."""
    costs = [run_cost(scenario_of(rs.pooled), rs.pooled) for rs in sets]
    currency = next((c["currency"] for c in costs if c["currency"]), None)
    rows = []
    for key, name, form in _COST_ROWS:
        if all(c[key] is None for c in costs):
            continue
        label = f"{name} ({currency})" if key.startswith("cost") and currency else name
        cells = ["–" if c[key] is None or not math.isfinite(c[key]) else form.format(c[key]) for c in costs]
        if len(costs) > 1:
            cells.append(_pct(costs[-1][key] - costs[0][key], costs[0][key])
                         if costs[0][key] is not None and costs[-1][key] is not None else "–")
        rows.append([label, *cells])
    change = [f"{sets[-1].label} vs {sets[0].label}"] if len(sets) > 1 else []
    return ["", *[rs.label for rs in sets], *change], rows


def _cost_note(sets: Sequence[RunSet]) -> str:
    priced = [rs.label for rs in sets if (sc := scenario_of(rs.pooled)) is not None and sc.cost is not None]
    text = ("Over the window after warm-up, from the LLM replicas actually up (sim.cost.run_cost); "
            "goodput per replica = good commands per second per replica up. ")
    if not priced:
        return text + "No scenario has a cost block: prices are not stated."
    return text + f"Prices from the scenarios' cost blocks ({', '.join(priced)})."


def _kind(rs: RunSet) -> str:
    return f"{len(rs.reps)} replications" if rs.is_replications else f"seed {rs.pooled.meta.get('seed')}"


def _method_note(sets: Sequence[RunSet]) -> str:
    base = sets[0]
    notes = []
    for rs in sets[1:]:
        if base.replications and rs.replications:
            how = ("paired over common random numbers (same seeds)" if stats.same_seeds(base.replications,
                                                                                            rs.replications)
                   else "Welch (different seeds)")
            notes.append(f"{rs.label} − {base.label}: 95% CI {how}")
        else:
            notes.append(f"{rs.label} − {base.label}: single run(s), no confidence interval")
    return "Differences are against the first run. " + "; ".join(notes) + "."


def comparison(sets: Sequence[RunSet]) -> dict[str, Any]:
    """What comparison.json holds: each run's KPIs, differences against the first, and CIs."""
    base = sets[0]
    values = [run_kpis(rs) for rs in sets]
    diffs = []
    for rs, vals in zip(sets[1:], values[1:], strict=True):
        d: dict[str, Any] = {"run": rs.label, "against": base.label,
                             "difference": {k: vals[k] - v for k, v in values[0].items() if k in vals}}
        if base.replications and rs.replications:
            d["ci"] = stats.compare_replications(base.replications, rs.replications)
            d["paired"] = stats.same_seeds(base.replications, rs.replications)
        diffs.append(d)
    return {"runs": [{"label": rs.label, "path": str(rs.path), "replications": len(rs.reps) if rs.is_replications
                      else None, "kpis": v} for rs, v in zip(sets, values, strict=True)],
            "differences": diffs}


def kpi_diff_table(sets: Sequence[RunSet], data: dict[str, Any]) -> tables.Table:
    """KPI | each run | for each later run: Δ, change %, and the CI of Δ with a verdict."""
    values = [r["kpis"] for r in data["runs"]]
    names = tables.headline([k for k in values[0] if all(k in v for v in values)])
    header = ["KPI", *[rs.label for rs in sets]]
    for d in data["differences"]:
        header += [f"{d['run']} − {d['against']}", "change"]
        if "ci" in d:
            header.append(f"95% CI ({'paired' if d['paired'] else 'Welch'})")
    rows = []
    for k in names:
        row = [tables.label(k), *[tables.fmt(k, v.get(k)) for v in values]]
        for d in data["differences"]:
            diff, ref = d["difference"].get(k, math.nan), values[0].get(k, math.nan)
            row += [tables.fmt_delta(k, diff), _pct(diff, ref)]
            if "ci" in d:
                row.append(_ci_cell(k, d["ci"].get(k)))
        rows.append(row)
    return header, rows


def _pct(diff: float, ref: float) -> str:
    if not (math.isfinite(diff) and math.isfinite(ref)) or ref == 0:
        return "–"
    return f"{100 * diff / abs(ref):+.1f}%"


def _ci_cell(kpi: str, ci: dict[str, float] | None) -> str:
    """'[lo, hi] better' / 'worse' when the interval excludes 0, 'no sig. difference' otherwise."""
    if not ci or not math.isfinite(ci.get("low", math.nan)):
        return "–"
    span = f"[{tables.fmt_delta(kpi, ci['low'])}, {tables.fmt_delta(kpi, ci['high'])}]"
    if not ci["significant"]:
        return f"{span} no sig. difference"
    way = stats.direction(kpi)
    if way == "both":
        return f"{span} differs"
    better = (ci["mean"] < 0) == (way == "lower")
    return f"{span} {'better' if better else 'worse'}"


def slo_side_by_side(sets: Sequence[RunSet]) -> tables.Table:
    """class | SLO | target | then per run: actual and PASS/FAIL."""
    rows: dict[tuple[str, str], list[str]] = {}
    for k, rs in enumerate(sets):
        for v in rs.pooled.summary.get("slos", []):
            key = (v["class"], v["slo"])
            if key not in rows:
                sign = "≥" if v["slo"] == "success_rate" else "≤"
                rows[key] = [v["class"], tables.label(v["slo"]), f"{sign} {tables.fmt(v['slo'], v['target'])}"] \
                    + ["–"] * len(sets)
            verdict = "PASS" if v["pass"] else "FAIL"
            rows[key][3 + k] = f"{tables.fmt(v['slo'], v.get('actual'))} {verdict}"
    return ["class", "SLO", "target (run 1)", *[rs.label for rs in sets]], list(rows.values())
