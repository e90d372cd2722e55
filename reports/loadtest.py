"""The load-test part of a measured run's report: what Locust's and GuideLLM's reports show.

Per endpoint: requests, failures, p50/p95/p99 (time to the response's start: Locust's
measure; a stream's tokens are timed per class below), rate; the failures with their messages;
per class: time to first token, inter-token latency and token throughput; the load generator's
own health: dispatch lateness and dropped starts; the target host and model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reports.document import Document
from reports.tables import Table
from sim.results import Results, window_histogram
from sim.results import names as N
from sim.results.summary import first_interval


def _ms(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "–"
    return f"{1e3 * x:,.1f} ms" if x < 1 else f"{x:,.2f} s"


def endpoint_table(http: dict[str, Any]) -> Table:
    rows = [[name, f"{e['requests']:,}", f"{e['failures']:,}", _ms(e["p50_s"]), _ms(e["p95_s"]), _ms(e["p99_s"]),
             f"{e['rate_per_s']:.2f}/s"] for name, e in (http.get("endpoints") or {}).items()]
    return ["endpoint", "requests", "failures", "p50", "p95", "p99", "rate"], rows


def failure_table(http: dict[str, Any]) -> Table:
    rows = [[f"{e['count']:,}", e["endpoint"], e["error"]] for e in http.get("errors") or []]
    return ["count", "endpoint", "error"], rows


def token_table(r: Results) -> Table:
    """Per class: TTFT, ITL and TPOT p50/p99 and output tokens per second over the window."""
    start = first_interval(r.meta)
    window = float(r.summary.get("window_s") or 0.0)
    rows = []
    for c in r.meta["classes"]:
        cells = [c]
        for metric in ("ttft", "itl", "tpot"):
            h = window_histogram(r.histograms.get(N.hist(metric, c), np.zeros((0, 3), np.int64)), start)  # type: ignore[arg-type]
            cells.append(f"{_ms(h.quantile(0.5))} / {_ms(h.quantile(0.99))}" if h.n else "–")
        tokens = r.series.get(N.tokens_out(c))
        cells.append(f"{float(tokens[start:].sum()) / window:,.1f}/s" if tokens is not None and window else "–")
        rows.append(cells)
    return ["class", "TTFT p50 / p99", "ITL p50 / p99", "TPOT p50 / p99", "output tokens"], rows


def _loadgen_cpu(tot: dict[str, float]) -> str:
    """The load generator's own CPU (all its processes), per request: near a core per process
    means the generator, not the target, may be what limits the rate."""
    cpu_us, sent = tot.get("loadgen_cpu_us"), tot.get("requests_sent")
    return f"; load generator CPU {cpu_us / 1e6:,.1f} s ({cpu_us / sent:,.0f} µs per request)" if cpu_us and sent else ""


def add_loadtest(doc: Document, r: Results) -> None:
    """The section, for a run measured by the load test (`run.json` source "loadtest")."""
    m = r.meta
    tot = m.get("totals") or {}
    http = m.get("http") or {}
    doc.heading("Load test")
    late = r.histograms.get("lateness:dispatch")
    late_p99 = window_histogram(late, 0).quantile(0.99) if late is not None and len(late) else None
    doc.text(f"Target {m.get('host', '?')}, model {m.get('model', '?')}, {m.get('mode', 'open')} model, "
             f"{m.get('workers', 0) or 'one'} {'workers' if m.get('workers') else 'load process'}. "
             f"Starts dispatched {tot.get('dispatched', 0):,.0f}, dropped {tot.get('dropped', 0):,.0f} "
             f"(the load generator ran out, not the system); dispatch lateness p99 {_ms(late_p99)}; "
             f"requests sent {tot.get('requests_sent', 0):,.0f}{_loadgen_cpu(tot)}.")
    if http.get("endpoints"):
        doc.text("HTTP per endpoint (latency to the start of the answer, as Locust times it):")
        doc.table(endpoint_table(http))
    doc.table(token_table(r))
    if http.get("errors"):
        doc.text("Failures, with the server's message:")
        doc.table(failure_table(http))
