"""The report's tables as plain rows of strings, rendered to Markdown or HTML.

A table is (header, rows). KPIs are shown with readable labels ("e2e p99", "success rate") in a
class x metric table; the keys baselines use (`help_me_buy.e2e_p99_s`) stay in summary.json and
in `surge check`, and `label` maps one to the other.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

Table = tuple[list[str], list[list[str]]]


def fmt(kpi: str, v: Any) -> str:
    """A KPI value with its unit: seconds below 1 s in ms, rates per second, fractions in %."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    v = float(v)
    if kpi.endswith("success_rate"):
        # 99.996% must not read as 100.00%: a planner would think nothing failed
        return f"{100 * v:.3f}%" if 0.9999 < v < 1 else f"{100 * v:.2f}%"
    if kpi.endswith("_s") and not kpi.endswith("_per_s"):
        return f"{1000 * v:.3g} ms" if abs(v) < 1 else f"{v:.3g} s"
    if kpi.endswith("_per_s"):
        return f"{v:.4g}/s"
    return f"{v:.4g}"


def fmt_delta(kpi: str, d: float) -> str:
    """A difference in the KPI's unit, signed (percentage points for rates)."""
    if d is None or not math.isfinite(d):
        return "–"
    if kpi.endswith("success_rate"):
        return f"{100 * d:+.2f} pp"
    if not kpi.endswith("_s"):  # a plain ratio (attempts per command): 4 decimals, never 7.7e-07
        d = round(d, 4)
        return ("+" if d >= 0 else "−") + f"{abs(d):.4g}"
    return ("+" if d >= 0 else "−") + fmt(kpi, abs(d))


METRICS = {  # KPI suffix -> readable label, in the order of the class x metric table
    "success_rate": "success rate", "goodput_per_s": "goodput", "attempts_per_command": "attempts / command",
    "e2e_p50_s": "e2e p50", "e2e_p99_s": "e2e p99", "ttft_p99_s": "TTFT p99", "tpot_p99_s": "TPOT p99",
    "throughput_per_s": "throughput", "orders_per_s": "orders",
}
LEGEND = ("e2e = end to end (command sent to answer); TTFT = time to first token; TPOT = time per output "
          "token; goodput = commands per second that succeeded within the class's e2e SLO.")
ALL = "all classes"


def label(kpi: str) -> str:
    """A KPI key as a person reads it: `chat.e2e_p99_s` -> "chat · e2e p99"."""
    cls, _, metric = kpi.rpartition(".")
    text = METRICS.get(metric) or _readable(metric)
    return f"{cls} · {text}" if cls else text


def _readable(metric: str) -> str:
    parts = metric.removesuffix("_s").split("_")
    if parts and parts[0] in ("e2e", "ttft", "tpot"):
        parts[0] = {"ttft": "TTFT", "tpot": "TPOT"}.get(parts[0], parts[0])
    return " ".join(parts)


def class_table(cells: Mapping[str, str], classes: Sequence[str], metrics: Sequence[str] = tuple(METRICS)) -> Table:
    """Class x metric: one row per class (then all classes), one column per metric (of `metrics`)
    that any row has; `cells` maps a KPI key (`chat.e2e_p99_s`, `success_rate`) to its value."""
    metrics = [m for m in metrics if any(_key(c, m) in cells for c in [*classes, ALL])]
    rows = [[c, *[cells.get(_key(c, m), "–") for m in metrics]] for c in [*classes, ALL]
            if any(_key(c, m) in cells for m in metrics)]
    return ["class", *[METRICS[m] for m in metrics]], rows


def _key(cls: str, metric: str) -> str:
    return metric if cls == ALL else f"{cls}.{metric}"


def kpi_cells(kpis: Mapping[str, float]) -> dict[str, str]:
    """A run's KPIs formatted for `class_table`."""
    return {k: fmt(k, v) for k, v in kpis.items() if k in headline(list(kpis))}


def replication_cells(rep: Mapping[str, Any], relative: bool = False) -> dict[str, str]:
    """Replications: "mean ± half-width of the CI" per KPI, for `class_table` (`relative`: the
    half-width as a percentage of the mean, narrower for a terminal)."""
    out = {}
    for k in headline(list(rep["kpis"])):
        e = rep["kpis"][k]
        hw, mean = e.get("half_width"), e["mean"]
        if hw is None:
            out[k] = fmt(k, mean)
        elif relative and mean:
            out[k] = f"{fmt(k, mean)} ±{100 * hw / abs(mean):.1f}%"
        else:
            out[k] = f"{fmt(k, mean)} ± {fmt(k, hw)}"
    return out


def headline(names: Sequence[str]) -> list[str]:
    """The KPIs worth a row in a report (summary.json keeps them all): run-wide ones, and per class
    success, goodput, e2e p50/p99 and TTFT/TPOT p99."""
    keep = ("success_rate", "goodput_per_s", "throughput_per_s", "orders_per_s", "attempts_per_command",
            "e2e_p50_s", "e2e_p99_s", "ttft_p99_s", "tpot_p99_s")
    return [n for n in names if n.rsplit(".", 1)[-1] in keep]


def kpi_table(kpis: Mapping[str, float], classes: Sequence[str]) -> Table:
    """One run: class x metric."""
    return class_table(kpi_cells(kpis), classes)


def replication_table(rep: Mapping[str, Any], classes: Sequence[str]) -> Table:
    """Replications: class x metric, each cell the mean ± the half-width of its CI."""
    return class_table(replication_cells(rep), classes)


def slo_table(verdicts: Sequence[Mapping[str, Any]]) -> Table:
    """Class | SLO | target | actual | verdict | margin (positive = room left)."""
    rows = []
    for v in verdicts:
        key = v["slo"]
        margin = v.get("margin")
        m = f"{100 * margin:+.1f}%" if margin is not None and math.isfinite(margin) else "–"
        target = f"≥ {fmt(key, v['target'])}" if key == "success_rate" else f"≤ {fmt(key, v['target'])}"
        rows.append([v["class"], label(key), target, fmt(key, v.get("actual")), "PASS" if v["pass"] else "FAIL", m])
    return ["class", "SLO", "target", "actual", "verdict", "margin"], rows


def markdown(table: Table) -> str:
    header, rows = table
    right = [_numeric(rows, i) for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def to_html(table: Table) -> str:
    header, rows = table
    right = [_numeric(rows, i) for i in range(len(header))]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, c in enumerate(row):
            cls = ' class="num"' if right[i] else ""
            if c in ("PASS", "FAIL", "REGRESSION", "OK"):
                cls = f' class="{"pass" if c in ("PASS", "OK") else "fail"}"'
            text = html.escape(c)
            if c.startswith("`") and c.endswith("`"):
                text = f"<code>{html.escape(c.strip('`'))}</code>"
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _numeric(rows: Sequence[Sequence[str]], i: int) -> bool:
    vals = [r[i] for r in rows if r[i] not in ("–", "")]
    return bool(vals) and all(v[:1] in "0123456789+−-±[≤≥" for v in vals)
