"""A compact summary on the terminal (rich): headline KPIs and SLO verdicts. No matplotlib here,
so `surge run` can print it without paying for the plotting stack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from reports import tables
from sim import stats


def print_summary(results_or_summary: Any, console: Console | None = None, title: str = "surge summary") -> None:
    """Print KPIs and SLO pass/fail for a `Results`, a summary dict (summary.json) or a replications
    summary (replications.json, shown as mean ± 95% CI half-width)."""
    con = console or Console()
    s = getattr(results_or_summary, "summary", results_or_summary)
    if not isinstance(s, Mapping):
        raise TypeError(f"print_summary needs Results or a summary mapping (got {type(s).__name__})")
    con.print(kpi_table(s, title))
    slos = s.get("slos") or []
    if slos:
        con.print(slo_table(slos))


def kpi_table(s: Mapping[str, Any], title: str) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    t.add_column("KPI", style="cyan", no_wrap=True)
    if "kpis" in s and "format" in s and s["format"] == stats.REPLICATIONS_FORMAT:
        t.add_column("mean", justify="right")
        t.add_column(f"± {100 * s['confidence']:g}% CI", justify="right")
        for k in tables.headline(list(s["kpis"])):
            e = s["kpis"][k]
            t.add_row(k, tables.fmt(k, e["mean"]), tables.fmt(k, e.get("half_width")))
        return t
    t.add_column("value", justify="right")
    values = stats.kpis(s)
    for k in tables.headline(list(values)):
        t.add_row(k, tables.fmt(k, values[k]))
    return t


def slo_table(verdicts: list[Mapping[str, Any]]) -> Table:
    header, rows = tables.slo_table(verdicts)
    t = Table(title="SLOs", title_justify="left", show_edge=False, pad_edge=False)
    for h in header:
        t.add_column(h, justify="right" if h in ("target", "actual", "margin") else "left")
    for row in rows:
        verdict = row[4]
        row[4] = f"[bold green]{verdict}[/]" if verdict == "PASS" else f"[bold red]{verdict}[/]"
        t.add_row(*row)
    return t
