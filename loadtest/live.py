"""What a load run shows while it runs, and what its report keeps about the HTTP traffic.

In the Locust process (local runner or master), `snapshot()` summarises the run so far — the
scenario's commands (offered and achieved rate, e2e p50/p99, failures by reason, tokens/s,
dispatch lateness, dropped starts, faults applied) from surge's own counts, and the HTTP side
per endpoint (requests, failures, p50/p95/p99, rate) and failures with their messages from
Locust's stats — and `write_live` puts it in the run folder as `live.json` once a second. The
`surge loadtest` process renders it (`LiveView`, a rich panel on stderr, quiet without a
terminal). The last snapshot goes into the measured results' `run.json` as `http`.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sim.results import LogHistogram, strict_json
from sim.results import names as N

LIVE_FILE = "live.json"


def quantiles(buckets: Counter[int] | None) -> tuple[float, float]:
    """p50 and p99 of log-histogram bucket counts (NaN when empty)."""
    if not buckets:
        return math.nan, math.nan
    h = LogHistogram.from_arrays(np.array(list(buckets)), np.array(list(buckets.values())))
    return h.quantile(0.5), h.quantile(0.99)


def command_stats(series: Mapping[str, float], buckets: dict[str, Counter[int]], classes: list[str],
                  elapsed_s: float) -> dict[str, Any]:
    """Per class: arrived, completed, failed by reason, rates, e2e p50/p99 so far."""
    out: dict[str, Any] = {}
    for c in classes:
        failed = {r: series.get(N.failed(c, r), 0.0) for r in N.REASONS if series.get(N.failed(c, r))}
        p50, p99 = quantiles(buckets.get(N.hist("e2e", c)))
        arrived, done = series.get(N.of_class("arrived", c), 0.0), series.get(N.of_class("completed", c), 0.0)
        out[c] = {"arrived": arrived, "completed": done, "failed": failed,
                  "offered_per_s": arrived / max(elapsed_s, 1e-9), "achieved_per_s": done / max(elapsed_s, 1e-9),
                  "e2e_p50_s": p50, "e2e_p99_s": p99,
                  "tokens_per_s": series.get(N.tokens_out(c), 0.0) / max(elapsed_s, 1e-9)}
    return out


def http_stats(stats: Any) -> dict[str, Any]:
    """Locust's request stats: per endpoint and the failures with their messages."""
    endpoints = {}
    for (name, method), e in sorted(stats.entries.items()):
        if not e.num_requests:
            continue
        endpoints[f"{method} {name}"] = {
            "requests": e.num_requests, "failures": e.num_failures,
            "p50_s": (e.get_response_time_percentile(0.5) or 0) / 1e3,
            "p95_s": (e.get_response_time_percentile(0.95) or 0) / 1e3,
            "p99_s": (e.get_response_time_percentile(0.99) or 0) / 1e3,
            "rate_per_s": e.total_rps, "mean_s": (e.avg_response_time or 0) / 1e3}
    errors = [{"endpoint": f"{e.method} {e.name}", "error": str(e.error)[:300], "count": e.occurrences}
              for e in sorted(stats.errors.values(), key=lambda e: -e.occurrences)[:20]]
    return {"endpoints": endpoints, "errors": errors}


def write_live(folder: str | Path, snapshot: dict[str, Any]) -> None:
    """`live.json`, replaced atomically (the reader never sees half a file)."""
    path = Path(folder) / LIVE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(strict_json(snapshot, indent=None))
    os.replace(tmp, path)


def read_live(folder: str | Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(folder) / LIVE_FILE).read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _ms(x: float | None) -> str:
    return "–" if x is None or not math.isfinite(x) or x <= 0 else f"{1e3 * x:,.0f} ms" if x < 10 else f"{x:,.1f} s"


def render(snap: dict[str, Any]) -> Any:
    """The live panel: progress, per-class commands, HTTP endpoints, errors, faults."""
    from rich.console import Group
    from rich.table import Table

    el, dur = snap.get("elapsed_s", 0.0), snap.get("duration_s", 0.0)
    head = Table.grid(padding=(0, 2))
    head.add_row(f"[bold]{snap.get('scenario', '')}[/] against {snap.get('host', '')}",
                 f"{el:,.0f} s of {dur:,.0f} s ({max(0.0, dur - el):,.0f} s left)",
                 f"dispatched {snap.get('dispatched', 0):,.0f}, dropped {snap.get('dropped', 0):,.0f}, "
                 f"start lateness p99 {_ms(snap.get('lateness_p99_s'))}")
    cmds = Table(title="commands", title_justify="left", expand=False)
    for col in ("class", "offered/s", "achieved/s", "e2e p50", "e2e p99", "tokens/s", "failed"):
        cmds.add_column(col, justify="right" if col != "class" else "left")
    for c, k in (snap.get("commands") or {}).items():
        failed = ", ".join(f"{r} {n:,.0f}" for r, n in k["failed"].items()) or "0"
        cmds.add_row(c, f"{k['offered_per_s']:.1f}", f"{k['achieved_per_s']:.1f}", _ms(k["e2e_p50_s"]),
                     _ms(k["e2e_p99_s"]), f"{k['tokens_per_s']:,.0f}", failed)
    http = Table(title="HTTP", title_justify="left")
    for col in ("endpoint", "requests", "failures", "p50", "p95", "p99", "req/s"):
        http.add_column(col, justify="right" if col != "endpoint" else "left")
    h = snap.get("http") or {}
    for name, e in (h.get("endpoints") or {}).items():
        http.add_row(name, f"{e['requests']:,}", f"{e['failures']:,}", _ms(e["p50_s"]), _ms(e["p95_s"]),
                     _ms(e["p99_s"]), f"{e['rate_per_s']:.1f}")
    parts: list[Any] = [head, cmds, http]
    errs = h.get("errors") or []
    if errs:
        err = Table(title="failures", title_justify="left")
        for col in ("count", "endpoint", "error"):
            err.add_column(col)
        for e in errs[:6]:
            err.add_row(f"{e['count']:,}", e["endpoint"], e["error"][:100])
        parts.append(err)
    faults = snap.get("faults") or []
    if faults:
        parts.append("faults: " + "; ".join(f"{f['fault_kind']} on {f['target']} at {f['t_s']:.0f} s" for f in faults))
    return Group(*parts)


class LiveView:
    """Shows `live.json` of a run folder while the run goes, on stderr when it is a terminal."""

    def __init__(self, folder: Path, enabled: bool | None = None) -> None:
        self.folder = folder
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._live: Any = None
        self._last = 0.0

    def __enter__(self) -> LiveView:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("starting ...", console=Console(stderr=True), refresh_per_second=2, transient=False)
            self._live.__enter__()
        return self

    def tick(self) -> None:
        if self._live is None or time.monotonic() - self._last < 0.5:
            return
        self._last = time.monotonic()
        snap = read_live(self.folder)
        if snap is not None:
            self._live.update(render(snap))

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self.tick()
            self._live.__exit__(None, None, None)
