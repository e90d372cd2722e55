"""The report's figures. Each takes one run or several (overlaid) and returns a matplotlib Figure,
or None when the run has none of the series it draws (e.g. no LLM fleet).

Rates are per second; latencies in seconds (time per output token in milliseconds); fractions
in percent. Shaded red = a fault window, grey = warm-up (excluded from KPIs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from reports import timeseries as ts
from reports.plot import Run, empty_note, finish, line_label, overlay, panels, style, target_line
from sim.results import Results


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: file stem, title (also the image's alt text) and builder."""

    key: str
    title: str
    caption: str
    build: Callable[[Sequence[Run]], Figure | None]


def _load(runs: Sequence[Run]) -> Figure:
    fig, (ax, ax2) = panels(2, "Offered load vs admitted vs goodput", height=2.8)
    items = [
        ("offered (new commands)", lambda r: ts.per_s(r, ts.total(r, "arrived:"))),
        ("attempts (incl. retries)", lambda r: ts.per_s(r, ts.total(r, "attempts:"))),
        ("admitted by gateway", lambda r: ts.per_s(r, ts.total(r, "admitted:"))),
        ("completed", lambda r: ts.per_s(r, ts.total(r, "completed:"))),
        ("goodput (within e2e SLO)", lambda r: ts.per_s(r, ts.total(r, "good:"))),
    ]
    # overlaid runs have four line styles to tell quantities apart: keep the three in the title
    overlay(ax, runs, items if len(runs) == 1 else [items[0], items[2], items[4]])
    ax.set_ylabel("commands / s")
    ax.set_title("Request rates", loc="left")
    overlay(ax2, runs, [("in flight", lambda r: r.series.get("in_flight"))], gauge=True)
    ax2.set_ylabel("commands")
    ax2.set_title("Commands in the system (end of interval)", loc="left")
    return finish(fig, [ax, ax2], runs)


_LAT_METRICS = (("e2e", "end-to-end", "s", 1.0), ("ttft", "time to first token", "s", 1.0),
                ("tpot", "time per output token", "ms", 1000.0))


def _latency(runs: Sequence[Run]) -> Figure | None:
    r0 = runs[0][1]
    cls = ts.classes(r0)
    metrics = [m for m in _LAT_METRICS if any(_has_hist(r, m[0], c) for _, r in runs for c in cls)]
    if not cls or not metrics:
        return None
    fig, axes = panels(len(cls) * len(metrics), "Latency percentiles over time, per command class",
                       ncols=len(cls), height=2.5)
    qs = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)) if len(runs) == 1 else (("p50", 0.5), ("p99", 0.99))
    for mi, (metric, name, unit, scale) in enumerate(metrics):
        for ci, c in enumerate(cls):
            ax = axes[mi * len(cls) + ci]
            _latency_panel(ax, runs, metric, c, qs, scale)
            ax.set_title(f"{c}: {name}", loc="left")
            ax.set_ylabel(f"{metric} ({unit})")
    return finish(fig, axes, runs)


def _has_hist(r: Results, metric: str, cls: str) -> bool:
    h = r.histograms.get(f"{metric}:{cls}")
    return h is not None and len(h) > 0


def _latency_panel(ax, runs: Sequence[Run], metric: str, cls: str,
                   qs: tuple[tuple[str, float], ...], scale: float) -> None:
    drawn = 0
    for ri, (label, r) in enumerate(runs):
        t, _, _ = ts.time_axis(r)
        q = ts.interval_quantiles(r.histograms.get(f"{metric}:{cls}", np.zeros((0, 3), np.int64)),
                                  r.meta["n_intervals"], tuple(v for _, v in qs))
        for k, (qname, _) in enumerate(qs):
            if np.isfinite(q[k]).any():
                ax.plot(t, q[k] * scale, lw=1.4, label=line_label(qname, label, len(runs)),
                        **style(ri, k, len(runs)))
                drawn += 1
    target = (runs[0][1].meta.get("slos", {}).get(cls) or {}).get(f"{metric}_p99_s")
    if target:
        target_line(ax, target * scale, f"SLO p99 ≤ {target * scale:g}{' ms' if scale != 1 else ' s'}")
    if not drawn:
        empty_note(ax, "no completed commands")


def _services(runs: Sequence[Run]) -> Figure | None:
    util = _union(runs, "utilisation:")
    if not util and not _union(runs, "queue:"):
        return None
    queued = [s for s in _union(runs, "queue:") if any(_peak(r, f"queue:{s}") > 0 for _, r in runs)]
    varying = [s for s in _union(runs, "capacity:") if any(np.ptp(r.series.get(f"capacity:{s}", [0])) > 0
                                                           for _, r in runs)]
    if len(runs) > 1:  # every service of every run would need a dozen legend entries: keep the busiest
        util = sorted(util, key=lambda s: -max(_peak(r, f"utilisation:{s}") for _, r in runs))[:4]
    fig, axes = panels(3 if varying else 2, "Service queues and utilisation", height=2.5)
    overlay(axes[0], runs, [(s, _getter(f"queue:{s}")) for s in queued], gauge=True)
    if not queued:
        empty_note(axes[0], "no requests waited in any queue")
    axes[0].set_ylabel("waiting requests")
    axes[0].set_title("Queue depth per service (end of interval; services that ever queued)", loc="left")
    overlay(axes[1], runs, [(s, _getter(f"utilisation:{s}")) for s in util], scale=100.0)
    axes[1].set_ylabel("busy / servers up (%)")
    axes[1].set_title("Utilisation per service (time average)" + (" — the 4 busiest" if len(runs) > 1 else ""),
                      loc="left")
    axes[1].axhline(100, color="0.5", lw=0.8)
    if varying:
        # services differ by orders of magnitude (2,000 gateway slots, 4 GPUs): compare shapes in %
        overlay(axes[2], runs, [(s, _of_max(f"capacity:{s}")) for s in varying], scale=100.0, gauge=True)
        axes[2].set_ylabel("% of the service's maximum")
        axes[2].set_title("Capacity: servers up (end of interval; services whose capacity changed)", loc="left")
    return finish(fig, axes, runs)


def _union(runs: Sequence[Run], prefix: str) -> list[str]:
    return sorted(set().union(*(ts.labelled(r, prefix) for _, r in runs)))


def _peak(r: Results, name: str) -> float:
    v = r.series.get(name)
    return float(np.nanmax(v)) if v is not None and len(v) else 0.0


def _getter(name: str) -> Callable[[Results], np.ndarray | None]:
    return lambda r: r.series.get(name)


def _of_max(name: str) -> Callable[[Results], np.ndarray | None]:
    def get(r: Results) -> np.ndarray | None:
        v = r.series.get(name)
        return None if v is None or not v.max() > 0 else v / v.max()
    return get


_LLM_PANELS = (  # title, y label, lines, scale, sampled at the interval's end
    ("Batch size (mean sequences per step)", "sequences", [("batch", _getter("llm_batch"))], 1.0, False),
    ("KV-cache use (end of interval)", "% of KV capacity", [("KV used", _getter("llm_kv_frac"))], 100.0, True),
    ("Token throughput", "tokens / s", [
        ("prefill", lambda r: ts.per_s(r, r.series.get("llm_prefill_tokens"))),
        ("decode", lambda r: ts.per_s(r, r.series.get("llm_decode_tokens")))], 1.0, False),
    ("Replicas up (end of interval)", "replicas", [("replicas up", _getter("llm_replicas_up"))], 1.0, True),
    ("Preemptions (KV cache full)", "preemptions / s",
     [("preemptions", lambda r: ts.per_s(r, r.series.get("llm_preemptions")))], 1.0, False),
)


def _llm(runs: Sequence[Run]) -> Figure | None:
    present = [p for p in _LLM_PANELS if any(f(r) is not None for _, r in runs for _, f in p[2])]
    if not present:
        return None
    fig, axes = panels(len(present), "LLM fleet", ncols=2, height=2.4)
    for ax, (title, ylabel, items, scale, gauge) in zip(axes, present, strict=True):
        overlay(ax, runs, items, scale=scale, gauge=gauge)
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylabel)
    return finish(fig, axes, runs)


def _failures(runs: Sequence[Run]) -> Figure | None:
    fig, (ax, ax2) = panels(2, "Failures by reason and retries", height=2.6)
    if len(runs) == 1:
        r = runs[0][1]
        by = ts.failures_by_reason(r)
        t, _, _ = ts.time_axis(r)
        if by:
            ax.stackplot(t, *[v / r.meta["interval_s"] for v in by.values()], labels=list(by),
                         colors=[f"C{3 + k}" for k in range(len(by))], alpha=0.8)
        else:
            empty_note(ax, "no failed commands")
    else:
        reasons = sorted(set().union(*(ts.failures_by_reason(r) for _, r in runs)))
        overlay(ax, runs, [(why, partial(_failure_rate, reason=why)) for why in reasons])
    ax.set_ylabel("failed commands / s")
    ax.set_title("Failed commands by reason of the last attempt (all classes)", loc="left")
    overlay(ax2, runs, [("retries", lambda r: ts.per_s(r, ts.total(r, "retries:"))),
                        ("failed attempts", lambda r: ts.per_s(r, ts.total(r, "attempt_failed:")))])
    if not any(_peak(r, k) > 0 for _, r in runs for k in r.series if k.startswith(("retries:", "attempt_failed:"))):
        empty_note(ax2, "no retries, no failed attempts")
    ax2.set_ylabel("attempts / s")
    ax2.set_title("Retries sent and attempts that failed (all classes)", loc="left")
    return finish(fig, [ax, ax2], runs)


def _business(runs: Sequence[Run]) -> Figure | None:
    r0 = runs[0][1]
    rates = [(name, _rate_if_any(s)) for name, s in (("orders", "orders"), ("cards redeemed", "cards_redeemed"),
                                                     ("logins", "logins"), ("failed logins", "login_failed"))]
    rates = [x for x in rates if any(x[1](r) is not None for _, r in runs)]
    fig, axes = panels(2 if rates else 1, "Business KPIs", height=2.6)
    ax = axes[0]
    overlay(ax, runs, [(c, partial(ts.success_rate, cls=c)) for c in ts.classes(r0)], scale=100.0)
    ax.set_ylabel("commands succeeded (%)")
    ax.set_title("Success rate per class (succeeded / ended in the interval)", loc="left")
    for ci, c in enumerate(ts.classes(r0)):
        target = (r0.meta.get("slos", {}).get(c) or {}).get("success_rate")
        if target:
            target_line(ax, 100 * target, f"SLO {c} ≥ {100 * target:g}%",
                        colour=f"C{ci}" if len(runs) == 1 else "black")
    if rates:
        overlay(axes[1], runs, rates)
        axes[1].set_ylabel("per second")
        axes[1].set_title("Orders, free-order cards redeemed and logins", loc="left")
    fig = finish(fig, axes, runs)
    ax.set_ylim(max(0.0, _floor_pct(runs)), 101)
    return fig


def _rate_if_any(name: str) -> Callable[[Results], np.ndarray | None]:
    """Per-second rate of a series, or None when it is absent or all zero (nothing to draw)."""
    def get(r: Results) -> np.ndarray | None:
        v = r.series.get(name)
        return ts.per_s(r, v) if v is not None and v.any() else None
    return get


def _floor_pct(runs: Sequence[Run]) -> float:
    """Lower y-limit for success rates: zoom in when every value is high, so 99% vs 95% shows."""
    lows = [np.nanmin(ts.success_rate(r, c)) for _, r in runs for c in ts.classes(r)
            if np.isfinite(ts.success_rate(r, c)).any()]
    low = 100 * min(lows) if lows else 0.0
    return 0.0 if low < 50 else float(np.floor((low - 5) / 10) * 10)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("load", "Offered load vs admitted vs goodput",
               "Commands per second offered, attempted (with retries), admitted, completed and within "
               "the e2e SLO (goodput); below, commands in the system.", _load),
    FigureSpec("latency", "Latency percentiles over time, per command class",
               "Per-interval p50/p90/p99 of completed commands, from the latency histograms; dashed "
               "black line = the class's p99 SLO.", _latency),
    FigureSpec("services", "Service queues and utilisation",
               "Queue depth and utilisation per service; capacity when it changes (faults, autoscaling).",
               _services),
    FigureSpec("llm", "LLM fleet",
               "Continuous-batching fleet: batch size, KV-cache use, prefill/decode tokens per second, "
               "replicas up, preemptions.", _llm),
    FigureSpec("failures", "Failures by reason and retries",
               "Commands that failed, by the reason of their last attempt; retries and failed attempts.",
               _failures),
    FigureSpec("business", "Business KPIs",
               "Success rate per class against its SLO; orders, free-order cards redeemed and logins per "
               "second.", _business),
)


def build_figures(runs: Sequence[Run]) -> list[tuple[FigureSpec, Figure]]:
    """Every figure that has something to show for these runs, in report order."""
    out = []
    for spec in FIGURES:
        fig = spec.build(runs)
        if fig is not None:
            out.append((spec, fig))
    return out


def _failure_rate(r: Any, reason: str) -> Any:
    """Failed commands per second for one reason."""
    return ts.per_s(r, ts.failures_by_reason(r).get(reason))
