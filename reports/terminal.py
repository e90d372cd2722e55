"""A compact summary on the terminal (rich): the report's headline, the KPIs as a class x metric
table and the SLO verdicts. No matplotlib here, so `surge run` can print it without paying for
the plotting stack."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from reports import tables
from sim import stats


def print_summary(results_or_summary: Any, console: Console | None = None, title: str = "surge summary") -> None:
    """Print the headline (for a `Results`: what happened, when, for how long, what it cost, the
    same sentences as the report), KPIs and SLO pass/fail. Also takes a summary dict
    (summary.json) or a replications summary (replications.json, shown as mean ± 95% CI)."""
    con = console or Console()
    if console is None and not con.is_terminal:
        con.width = max(con.width, 120)  # a log, not a screen: no need to squeeze the table into 80 columns
    s = getattr(results_or_summary, "summary", results_or_summary)
    if not isinstance(s, Mapping):
        raise TypeError(f"print_summary needs Results or a summary mapping (got {type(s).__name__})")
    if hasattr(results_or_summary, "series"):
        from reports.story import headline

        for sentence in headline([results_or_summary], results_or_summary):
            con.print(sentence, highlight=False)
    con.print(kpi_table(s, title))
    slos = s.get("slos") or []
    if slos:
        con.print(slo_table(slos))


def kpi_table(s: Mapping[str, Any], title: str) -> Table:
    """Class x metric: run KPIs, or replication means ± the CI half-width."""
    if "kpis" in s and s.get("format") == stats.REPLICATIONS_FORMAT:
        cells = tables.replication_cells(s, relative=True)
        classes = _classes(s["kpis"])
        title = f"{title} (mean ±{100 * s['confidence']:g}% CI over {s['n']} replications)"
    else:
        cells, classes = tables.kpi_cells(stats.kpis(s)), list(s.get("classes", {}))
    header, rows = tables.class_table(cells, classes, _COLUMNS)
    run_wide = [f"{tables.METRICS[m]} {cells[m]}" for m in ("throughput_per_s", "orders_per_s") if m in cells]
    if run_wide:
        title += " — " + ", ".join(run_wide)
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for k, h in enumerate(header):  # values are never cut: a narrow terminal wraps the headers instead
        widest = max((len(r[k]) for r in rows), default=1)
        t.add_column(h, justify="left" if k == 0 else "right", style="cyan" if k == 0 else None, min_width=widest,
                     max_width=max(widest, 9))
    for row in rows:
        t.add_row(*row)
    return t


# what fits 80 columns; throughput and orders go in the title, e2e p50 is in the report
_COLUMNS = [m for m in tables.METRICS if m not in ("throughput_per_s", "orders_per_s", "e2e_p50_s")]


def _classes(kpis: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for k in kpis:
        if "." in k:
            seen[k.rpartition(".")[0]] = None
    return list(seen)


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
