"""Tables and figures of `surge sweep` and `surge plan`, from what `sim.planning` wrote
(sweep.json, plan.json); nothing here simulates.

    sweep_report(sweep.json) -> [sweep.csv, sweep.md, sweep_slos.png, sweep_heatmap.png, sweep_cost.png]
    plan_report(plan.json)   -> [plan.md, plan.png]

The heatmap needs exactly two axes and the cost figure a priced scenario (a `cost` block).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CLIP = 100.0  # worst SLO use above this is drawn at it


def _load(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())  # type: ignore[no-any-return]


def _f(x: Any, fmt: str = "{:.4g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return fmt.format(x)


def sweep_report(sweep_json: str | Path) -> list[Path]:
    """Write the tables and figures of a sweep next to its sweep.json; return their paths."""
    src = Path(sweep_json)
    sw = _load(src)
    out = [sweep_csv(sw, src.with_name("sweep.csv")), sweep_markdown(sw, src.with_name("sweep.md")),
           slo_figure(sw, src.with_name("sweep_slos.png"))]
    if len(sw["axes"]) == 2:
        out.append(heatmap(sw, src.with_name("sweep_heatmap.png")))
    if sw["pareto"]:
        out.append(cost_figure(sw, src.with_name("sweep_cost.png")))
    return out


def _slo_names(sw: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(n for p in sw["points"] for n in p["slos"]))


def sweep_csv(sw: dict[str, Any], path: Path) -> Path:
    """One row per point: the axes' values, attainment, cost, and each SLO's mean and CI."""
    paths = [a["path"] for a in sw["axes"]]
    slos = _slo_names(sw)
    kpis = list(dict.fromkeys(k for p in sw["points"] for k in p["kpis"]))
    head = [*paths, "replications", "slo_attainment", "cost_per_hour", "metastable_fraction", "bottleneck"]
    head += [f"{s}.{k}" for s in slos for k in ("mean", "low", "high", "pass_fraction")]
    head += [f"{k}.mean" for k in kpis]
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for p in sw["points"]:
            row = [p["values"][a] for a in paths]
            row += [p["n"], p["attainment"], p["cost_per_hour"], p["metastable_fraction"], p["bottleneck"]]
            row += [p["slos"].get(s, {}).get(k) for s in slos for k in ("mean", "low", "high", "pass_fraction")]
            row += [p["kpis"].get(k, {}).get("mean") for k in kpis]
            w.writerow(["" if x is None else x for x in row])
    return path


def sweep_markdown(sw: dict[str, Any], path: Path) -> Path:
    """The same as a Markdown table: SLO metrics as mean +- CI half-width, Pareto points marked."""
    paths = [a["path"] for a in sw["axes"]]
    slos = _slo_names(sw)
    front = set(sw["pareto"])
    lines = [f"# Sweep of {sw['scenario']}", "",
             f"{len(sw['points'])} points x {sw['replications']} replications (seeds {sw['seeds'][0]}.."
             f"{sw['seeds'][-1]}, the same for every point), engine `{sw['engine']}`, "
             f"{sw['confidence']:.0%} intervals. Attainment: the fraction of replications meeting every SLO. "
             "Pareto: no other point is cheaper with at least the same attainment.", ""]
    head = [*paths, "SLO attainment", "cost/h", "bottleneck", *slos, "Pareto"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, p in enumerate(sw["points"]):
        cells = [str(p["values"][a]) for a in paths]
        cells += [_f(p["attainment"], "{:.0%}"), _f(p["cost_per_hour"], "{:,.2f}"), str(p["bottleneck"] or "-")]
        for s in slos:
            v = p["slos"].get(s, {})
            cells.append(f"{_f(v.get('mean'))} ± {_f(v.get('half_width'), '{:.2g}')}" if v else "-")
        cells.append("yes" if i in front else "")
        lines.append("| " + " | ".join(cells) + " |")
    path.write_text("\n".join(lines) + "\n")
    return path


def _series(sw: dict[str, Any]) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """Points grouped by the values of every axis but the first: label -> [(x, point)]."""
    first, rest = sw["axes"][0]["path"], [a["path"] for a in sw["axes"][1:]]
    groups: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for p in sw["points"]:
        label = ", ".join(f"{r.split('.')[-1]}={p['values'][r]}" for r in rest) or sw["scenario"]
        groups.setdefault(label, []).append((p["values"][first], p))
    return groups


def _xs(vals: list[Any]) -> tuple[list[float], list[str] | None]:
    """Numeric values as they are; anything else as positions with tick labels."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return [float(v) for v in vals], None
    return list(range(len(vals))), [str(v) for v in vals]


def slo_figure(sw: dict[str, Any], path: Path) -> Path:
    """One panel per SLO target: its mean against the first axis, CI band, the target dashed."""
    slos = _slo_names(sw)
    cols = min(3, max(1, len(slos)))
    rows = math.ceil(len(slos) / cols) or 1
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    first = sw["axes"][0]["path"]
    for ax, name in zip(axes.flat, slos, strict=False):
        target = None
        for label, pts in _series(sw).items():
            xs, ticks = _xs([x for x, _ in pts])
            v = [p["slos"].get(name, {}) for _, p in pts]
            mean = [_nan(s.get("mean")) for s in v]
            ax.plot(xs, mean, marker="o", ms=3, label=label)
            ax.fill_between(xs, [_nan(s.get("low")) for s in v], [_nan(s.get("high")) for s in v], alpha=0.2)
            if ticks:
                ax.set_xticks(xs, ticks)
            elif all(isinstance(x, int) for x, _ in pts):
                ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            target = next((s["target"] for s in v if s), target)
        if target is not None:
            ax.axhline(target, color="k", ls="--", lw=0.8, label="target")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(first, fontsize=8)
    for ax in list(axes.flat)[len(slos):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{sw['scenario']}: SLO metrics, mean and {sw['confidence']:.0%} CI over "
                 f"{sw['replications']} replications", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _nan(x: Any) -> float:
    return float(x) if x is not None else math.nan


def heatmap(sw: dict[str, Any], path: Path) -> Path:
    """SLO attainment over the two axes (first axis rows, second columns), annotated."""
    a, b = sw["axes"]
    grid = [[math.nan] * len(b["values"]) for _ in a["values"]]
    for p in sw["points"]:
        grid[a["values"].index(p["values"][a["path"]])][b["values"].index(p["values"][b["path"]])] = p["attainment"]
    fig, ax = plt.subplots(figsize=(1.6 + 0.8 * len(b["values"]), 1.2 + 0.5 * len(a["values"])))
    im = ax.imshow(grid, origin="lower", cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(b["values"])), [str(v) for v in b["values"]])
    ax.set_yticks(range(len(a["values"])), [str(v) for v in a["values"]])
    ax.set_xlabel(b["path"])
    ax.set_ylabel(a["path"])
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, _f(v, "{:.0%}"), ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, label="replications meeting every SLO")
    ax.set_title(f"{sw['scenario']}: SLO attainment", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def cost_figure(sw: dict[str, Any], path: Path) -> Path:
    """Cost per hour against SLO attainment, every point; the Pareto front joined and labelled."""
    pts = sw["points"]
    priced = [p for p in pts if p["cost_per_hour"] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p["cost_per_hour"] for p in priced], [p["attainment"] for p in priced], color="#999999", s=18,
               label="configuration")
    front = [pts[i] for i in sw["pareto"]]
    ax.step([p["cost_per_hour"] for p in front], [p["attainment"] for p in front], where="post", color="#c0392b",
            marker="o", ms=5, label="Pareto front")
    labels: dict[tuple[float, float], list[str]] = {}  # equal points share one label
    for p in front:
        labels.setdefault((p["cost_per_hour"], p["attainment"]), []).append(
            ", ".join(f"{k.split('.')[-1]}={v}" for k, v in p["values"].items()))
    for xy, texts in labels.items():
        ax.annotate("\n".join(texts), xy, fontsize=7, xytext=(4, -10), textcoords="offset points", va="top")
    currency = next((p["currency"] for p in priced if p["currency"]), "")
    ax.set_xlabel(f"cost per hour as provisioned ({currency})")
    ax.set_ylabel("SLO attainment (replications meeting every SLO)")
    ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8)
    ax.set_title(f"{sw['scenario']}: cost against SLO attainment", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plan_report(plan_json: str | Path) -> list[Path]:
    """plan.md (the answer per mode and every probe) and plan.png (the probes of each search)."""
    src = Path(plan_json)
    doc = _load(src)
    return [plan_markdown(doc, src.with_name("plan.md")), plan_figure(doc, src.with_name("plan.png"))]


def _slo_use(check: dict[str, Any]) -> float:
    """How much of a target is used: latency mean/target; success rate: error budget used."""
    mean, target = check.get("mean"), check["target"]
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return math.inf
    if check["slo"] == "survives_trigger":
        return 2.0 * mean  # any metastable replication reads as over the limit
    if check["slo"] == "success_rate":
        return (1 - mean) / (1 - target) if target < 1 else (math.inf if mean < 1 else 0.0)
    return mean / target if target else math.inf


def plan_markdown(doc: dict[str, Any], path: Path) -> Path:
    lines = [f"# Plan for {doc['scenario']}", "", f"Every SLO met with {doc['confidence']:.0%} confidence "
             f"(jointly), engine `{doc['engine']}`.", ""]
    for p in doc["plans"]:
        lines += [f"## {p['mode']}", "", f"constraints: {', '.join(p['constraints'])}", "",
                  f"answer: {p['answer'] if p['answer'] is not None else 'none in the range'}; "
                  f"cost per hour: {_f(p['cost_per_hour'], '{:,.2f}')} {p['currency'] or ''}", ""]
        m = p.get("margin")
        if m:
            b = m["bottleneck"] or {}
            lines += [f"margin: load x{_f(m['load_ok'])} met, x{_f(m['load_breaks'])} breaks "
                      f"({_f(m['margin'], '{:+.0%}')}); binding {m['binding']}; bottleneck {b.get('service', '-')}", ""]
        lines += ["| values | verdict | replications | binding | worst SLO use |", "|---|---|---|---|---|"]
        for pr in p["probes"]:
            worst = max((_slo_use(c) for c in pr["checks"]), default=math.nan)
            lines.append(f"| {pr['values']} | {pr['state']} | {pr['n']} | {pr['binding']} | {_f(worst, '{:.2f}')} |")
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def plan_figure(doc: dict[str, Any], path: Path) -> Path:
    """Per mode: the worst SLO use (1 = at a target; log scale, shown at most CLIP) of every
    probe of the first axis, and of every load of the margin search; green passed, red failed,
    grey unsure."""
    colours = {"pass": "#2e8b57", "fail": "#c0392b", "unsure": "#999999"}
    plans = doc["plans"]
    fig, axes = plt.subplots(len(plans), 2, figsize=(10, 3.2 * len(plans)), squeeze=False)
    for (ax, axm), p in zip(axes, plans, strict=True):
        first = next(iter(p["probes"][0]["values"])) if p["probes"] and p["probes"][0]["values"] else "value"
        for pr in p["probes"]:
            x = pr["values"].get(first)
            y = max((_slo_use(c) for c in pr["checks"]), default=math.nan)
            ax.scatter([x] if isinstance(x, int | float) else [str(x)], [min(y, CLIP)], color=colours[pr["state"]])
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_yscale("log")
        ax.set_xlabel(first)
        ax.set_ylabel("worst SLO use (1 = target)")
        ax.set_title(f"{p['mode']}: answer {p['answer']}", fontsize=9)
        m = p.get("margin") or {"probes": []}
        for pr in m["probes"]:
            y = max((_slo_use(c) for c in pr["checks"]), default=math.nan)
            axm.scatter([pr["load"]], [min(y, CLIP)], color=colours[pr["state"]])
        axm.axhline(1.0, color="k", ls="--", lw=0.8)
        axm.set_yscale("log")
        axm.set_xlabel("load (x arrivals.scale) at the answer")
        axm.set_title(f"margin {_f(m.get('margin'), '{:+.0%}')}, binding {m.get('binding', '-')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
