"""The report's tables as plain rows of strings, rendered to Markdown or HTML.

A table is (header, rows, aligns). KPI names are shown as the keys baselines use
(`help_me_buy.e2e_p99_s`), so what a planner reads is what CI checks.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from sim import stats

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
    return ("+" if d >= 0 else "−") + fmt(kpi, abs(d))


def headline(names: Sequence[str]) -> list[str]:
    """The KPIs worth a row in a report (summary.json keeps them all): run-wide ones, and per class
    success, goodput, e2e p50/p99 and TTFT/TPOT p99."""
    keep = ("success_rate", "goodput_per_s", "throughput_per_s", "orders_per_s", "attempts_per_command",
            "e2e_p50_s", "e2e_p99_s", "ttft_p99_s", "tpot_p99_s")
    return [n for n in names if n.rsplit(".", 1)[-1] in keep]


def kpi_table(kpis: Mapping[str, float]) -> Table:
    """One run: KPI | value."""
    return ["KPI", "value"], [[f"`{k}`", fmt(k, kpis[k])] for k in headline(list(kpis))]


def replication_table(rep: Mapping[str, Any]) -> Table:
    """Replications: KPI | mean | 95% CI | n."""
    conf = f"{100 * rep.get('confidence', stats.CONFIDENCE):g}% CI"
    rows = []
    for k in headline(list(rep["kpis"])):
        e = rep["kpis"][k]
        ci = f"[{fmt(k, e['low'])}, {fmt(k, e['high'])}]" if e.get("low") is not None else "–"
        hw = f"± {fmt(k, e['half_width'])}" if e.get("half_width") is not None else ""
        rows.append([f"`{k}`", fmt(k, e["mean"]), f"{hw} {ci}".strip(), str(e["n"])])
    return ["KPI", "mean", conf, "n"], rows


def slo_table(verdicts: Sequence[Mapping[str, Any]]) -> Table:
    """Class | SLO | target | actual | verdict | margin (positive = room left)."""
    rows = []
    for v in verdicts:
        key = v["slo"]
        margin = v.get("margin")
        m = f"{100 * margin:+.1f}%" if margin is not None and math.isfinite(margin) else "–"
        target = f"≥ {fmt(key, v['target'])}" if key == "success_rate" else f"≤ {fmt(key, v['target'])}"
        rows.append([v["class"], key, target, fmt(key, v.get("actual")), "PASS" if v["pass"] else "FAIL", m])
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
