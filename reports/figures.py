"""The report's figures. Each takes one run or several (overlaid) and returns a Chart (drawn by
`reports.plot` as a PNG and, where a planner zooms, by `reports.interactive`), or None when the
run has nothing for it to show. A new figure is one entry in FIGURES.

Rates are per second; latencies in seconds (time per output token in milliseconds); fractions
in percent. Red bands are faults (tagged F1, F2, ...), grey is the warm-up (excluded from KPIs).
With one run each quantity has its own colour; with several, colour is the run and line style
the quantity, so a comparison reads "blue = run A, orange = run B" across every panel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from reports import timeseries as ts
from reports.chart import DASHES, WARMUP_COLOUR, Band, Chart, Line, Mark, Panel, Target, TimeAxis, colour
from sim.results import Results
from sim.results import names as N

Run = tuple[str, Results]  # (label, results)
Getter = Callable[[Results], np.ndarray | None]


@dataclass(frozen=True)
class FigureSpec:
    """A figure of the report: file stem, title (also the image's alt text), caption, builder,
    and where it goes: "top" (right under the headline) or "body" (the Figures section)."""

    key: str
    title: str
    caption: str
    build: Callable[[Sequence[Run]], Chart | None]
    place: Literal["top", "body"] = "body"


def lines(runs: Sequence[Run], items: Sequence[tuple[str, Getter]], scale: float = 1.0,
          gauge: bool = False) -> list[Line]:
    """One Line per (name, f(results) -> per-interval values or None) per run; counts and averages
    at the middle of their interval, `gauge` values (sampled at its end) at its end."""
    out = []
    for ri, (label, r) in enumerate(runs):
        t = ts.end_s(r) if gauge else ts.mid_s(r)
        for ii, (name, f) in enumerate(items):
            y = f(r)
            if y is None:
                continue
            one = len(runs) == 1
            out.append(Line(name if one else f"{name} — {label}", t, np.asarray(y, dtype=float) * scale,
                            colour(ii if one else ri), "solid" if one else DASHES[ii % len(DASHES)]))
    return out


def chart(runs: Sequence[Run], key: str, title: str, panels: list[Panel], ncols: int = 1,
          zoom: bool = False, marks: Sequence[Mark] = (), panel_height: float = 2.6,
          matrix: bool = False) -> Chart | None:
    """A Chart on the first run's time axis with every run's fault bands and the warm-up; its empty
    panels left out."""
    r0 = runs[0][1]
    bands: list[Band] = []
    warm = ts.warmup_window(r0)
    if warm:
        bands.append(Band(warm.start_s, warm.end_s, warm.label, colour=WARMUP_COLOUR))
    faults: list[ts.Window] = []
    for _, r in runs:
        faults += [w for w in ts.fault_windows(r) if w not in faults]
    faults.sort(key=lambda w: w.start_s)
    bands += [Band(w.start_s, w.end_s, w.label, tag=f"F{k + 1}") for k, w in enumerate(faults)]
    return Chart(key, title, TimeAxis.of(r0), panels, ncols, bands, list(marks), zoom, panel_height, matrix).shown()


def _rate(metric: N.ClassCounter) -> Getter:
    return lambda r: ts.per_s(r, ts.total(r, metric))


def _series(name: str, per_s: bool = False) -> Getter:
    def get(r: Results) -> np.ndarray | None:
        v = r.series.get(name)
        return ts.per_s(r, v) if per_s else v
    return get


def _load(runs: Sequence[Run]) -> Chart | None:
    items = [("offered (new commands)", _rate("arrived")), ("attempts (incl. retries)", _rate("attempts")),
             ("admitted by gateway", _rate("admitted")), ("completed", _rate("completed")),
             ("goodput (within e2e SLO)", _rate("good"))]
    # overlaid runs have four line styles to tell quantities apart: keep three
    rates = lines(runs, items if len(runs) == 1 else [items[0], items[2], items[4]])
    return chart(runs, "load", "Offered load vs admitted vs goodput", [
        Panel("Request rates", "commands / s", rates),
        Panel("Commands in the system (end of interval)", "commands",
              lines(runs, [("in flight", _series(N.IN_FLIGHT))], gauge=True)),
    ], zoom=True, panel_height=2.8)


_LAT_METRICS: tuple[tuple[N.HistMetric, str, str, float], ...] = (
    ("e2e", "end-to-end", "s", 1.0), ("ttft", "time to first token", "s", 1.0),
    ("tpot", "time per output token", "ms", 1000.0))


def _latency(runs: Sequence[Run]) -> Chart | None:
    cls = ts.classes(runs[0][1])
    if not cls:
        return None
    qs = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)) if len(runs) == 1 else (("p50", 0.5), ("p99", 0.99))
    panels = []
    for metric, name, unit, scale in _LAT_METRICS:
        for c in cls:
            p = Panel(c, f"{name} ({unit})",
                      lines(runs, [(q, _quantile(metric, c, v)) for q, v in qs], scale=scale))
            target = (runs[0][1].meta.get("slos", {}).get(c) or {}).get(f"{metric}_p99_s")
            if target:
                p.targets.append(Target(target * scale, f"SLO p99 ≤ {target * scale:g} {unit}"))
            panels.append(p)
    return chart(runs, "latency", "Latency percentiles over time, per command class", panels,
                 ncols=len(cls), panel_height=2.3, matrix=True)


def _quantile(metric: N.HistMetric, cls: str, q: float) -> Getter:
    def get(r: Results) -> np.ndarray | None:
        h = r.histograms.get(N.hist(metric, cls))
        if h is None or not len(h):
            return None
        return ts.interval_quantiles(h, r.meta["n_intervals"], (q,))[0]
    return get


def _services(runs: Sequence[Run]) -> Chart | None:
    util = sorted(set().union(*(ts.services(r, "utilisation") for _, r in runs)))
    queue = sorted(set().union(*(ts.services(r, "queue") for _, r in runs)))
    cap = sorted(set().union(*(ts.services(r, "capacity") for _, r in runs)))
    busy = [s for s in util if any(_peak(r, N.of_service("utilisation", s)) > 0 for _, r in runs)]
    if len(runs) > 1:  # every service of every run would need a dozen legend entries: keep the busiest
        busy = sorted(busy, key=lambda s: -max(_peak(r, N.of_service("utilisation", s)) for _, r in runs))[:4]
    queued = [s for s in queue if any(_peak(r, N.of_service("queue", s)) > 0 for _, r in runs)]
    varying = [s for s in cap if any(np.ptp(r.series.get(N.of_service("capacity", s), [0])) > 0 for _, r in runs)]
    return chart(runs, "services", "Service queues and utilisation", [
        Panel("Queue depth per service (end of interval; services that ever queued)", "waiting requests",
              lines(runs, [(s, _series(N.of_service("queue", s))) for s in queued], gauge=True)),
        Panel("Utilisation per service (time average)" + (" — the 4 busiest" if len(runs) > 1 else ""),
              "busy / servers up (%)", lines(runs, [(s, _series(N.of_service("utilisation", s))) for s in busy],
                                             scale=100.0), ylim=(0.0, 105.0)),
        # services differ by orders of magnitude (2,000 gateway slots, 4 GPUs): compare shapes in %
        Panel("Capacity: servers up (end of interval; services whose capacity changed)", "% of its maximum",
              lines(runs, [(s, _of_max(N.of_service("capacity", s))) for s in varying], scale=100.0, gauge=True),
              ylim=(0.0, 105.0)),
    ], panel_height=2.5)


def _peak(r: Results, name: str) -> float:
    v = r.series.get(name)
    return float(np.nanmax(v)) if v is not None and len(v) else 0.0


def _of_max(name: str) -> Getter:
    def get(r: Results) -> np.ndarray | None:
        v = r.series.get(name)
        return None if v is None or not v.max() > 0 else v / v.max()
    return get


def _nonzero(f: Getter) -> Getter:
    """A line that is only worth a legend entry when it is not all zero (failed logins, cards)."""
    def get(r: Results) -> np.ndarray | None:
        y = f(r)
        return y if y is not None and np.nan_to_num(y).any() else None
    return get


def _varying(name: str) -> Getter:
    """A gauge only when it changes during the run (a constant replica count says nothing)."""
    def get(r: Results) -> np.ndarray | None:
        v = r.series.get(name)
        return v if v is not None and np.ptp(v) > 0 else None
    return get


def _llm(runs: Sequence[Run]) -> Chart | None:
    return chart(runs, "llm", "LLM fleet", [
        Panel("Batch size (mean sequences per step)", "sequences", lines(runs, [("batch", _series(N.LLM_BATCH))])),
        Panel("KV-cache use (end of interval)", "% of KV capacity",
              lines(runs, [("KV used", _series(N.LLM_KV_FRAC))], scale=100.0, gauge=True)),
        Panel("Token throughput", "tokens / s", lines(runs, [("prefill", _series(N.LLM_PREFILL_TOKENS, True)),
                                                           ("decode", _series(N.LLM_DECODE_TOKENS, True))])),
        Panel("Replicas up (end of interval)", "replicas",
              lines(runs, [("replicas up", _varying(N.LLM_REPLICAS_UP))], gauge=True)),
        Panel("Preemptions (KV cache full)", "preemptions / s",
              lines(runs, [("preemptions", _series(N.LLM_PREEMPTIONS, True))])),
    ], ncols=2, panel_height=2.3)


def _failures(runs: Sequence[Run]) -> Chart | None:
    reasons = sorted(set().union(*(ts.failures_by_reason(r) for _, r in runs)),
                     key=lambda w: -sum(float(np.sum(ts.failures_by_reason(r).get(w, 0))) for _, r in runs))
    by = lines(runs, [(w, partial(_failure_rate, reason=w)) for w in reasons])
    if len(runs) == 1:
        by = [Line(ln.label, ln.t_s, ln.y, colour(3 + k)) for k, ln in enumerate(by)]
    return chart(runs, "failures", "Failures by reason and retries", [
        Panel("Failed commands by reason of the last attempt (all classes)", "failed commands / s", by,
              stacked=len(runs) == 1),
        Panel("Retries sent and attempts that failed (all classes)", "attempts / s",
              lines(runs, [("retries", _rate("retries")),
                           ("failed attempts", lambda r: ts.per_s(r, ts.attempt_failures(r)))])),
    ])


def _failure_rate(r: Results, reason: str) -> np.ndarray | None:
    """Failed commands per second for one reason."""
    return ts.per_s(r, ts.failures_by_reason(r).get(reason))


def _business(runs: Sequence[Run]) -> Chart | None:
    r0 = runs[0][1]
    ok = Panel("Success rate per class (succeeded / ended in the interval)", "commands succeeded (%)",
               lines(runs, [(c, partial(ts.success_rate, cls=c)) for c in ts.classes(r0)], scale=100.0),
               ylim=(_floor_pct(runs), 101.0))
    by_target: dict[float, list[int]] = {}  # classes with the same target share one line and one label
    for ci, c in enumerate(ts.classes(r0)):
        target = (r0.meta.get("slos", {}).get(c) or {}).get("success_rate")
        if target:
            by_target.setdefault(float(target), []).append(ci)
    for target, idx in by_target.items():
        names = ", ".join(ts.classes(r0)[i] for i in idx)
        ok.targets.append(Target(100 * target, f"SLO {names} ≥ {100 * target:g}%",
                                 colour(idx[0]) if len(runs) == 1 and len(idx) == 1 else "black"))
    rates = [("orders", _series(N.ORDERS, True)), ("cards redeemed", _series("cards_redeemed", True)),
             ("logins", _series(N.LOGINS, True)), ("failed logins", _series(N.LOGIN_FAILED, True))]
    return chart(runs, "business", "Business KPIs", [
        ok, Panel("Orders, free-order cards redeemed and logins", "per second",
                  lines(runs, [(name, _nonzero(f)) for name, f in rates])),
    ])


def _stock(runs: Sequence[Run]) -> Chart | None:
    """Inventory and money: units free, held and sold; inventory answers; money so far."""
    services = sorted(set().union(*({N.split(k)[1] for k in r.series if N.split(k)[0] == "sold"} for _, r in runs)))
    units: list[tuple[str, Getter]] = []
    for s in services:
        units += [(f"{s} free", _series(N.of_stock("stock_free", s))), (f"{s} held", _series(N.of_stock("stock_held", s))),
                  (f"{s} sold", _cumulative(N.of_stock("sold", s)))]
    answers = [(a.replace("_", " "), _series(N.attempt_failed(a), True)) for a in ("conflict", "sold_out")]
    money = [(m.replace("_", " "), _nonzero(_cumulative(m))) for m in N.MONEY_COUNTERS]
    return chart(runs, "stock", "Inventory and money at risk", [
        Panel("Stock: units free and held (end of interval), sold (so far)", "units",
              lines(runs, units if len(runs) == 1 else units[:3], gauge=True)),
        Panel("Attempts answered by an inventory: conflict (held by others, or a lapsed hold), sold out",
              "attempts / s", lines(runs, answers)),
        Panel("Money so far: payments, duplicates, failed after payment, refunds, wrong items", "orders",
              lines(runs, money, gauge=True)),
    ], panel_height=2.5)


def _cumulative(name: str) -> Getter:
    def get(r: Results) -> np.ndarray | None:
        v = r.series.get(name)
        return None if v is None else np.cumsum(v)
    return get


def _floor_pct(runs: Sequence[Run]) -> float:
    """Lower y-limit for success rates: zoom in when every value is high, so 99% vs 95% shows."""
    lows = [np.nanmin(ts.success_rate(r, c)) for _, r in runs for c in ts.classes(r)
            if np.isfinite(ts.success_rate(r, c)).any()]
    low = 100 * min(lows) if lows else 0.0
    return 0.0 if low < 50 else float(np.floor((low - 5) / 10) * 10)


def _outage(runs: Sequence[Run]) -> Chart | None:
    if len(runs) != 1:
        return None
    from reports.story import outage_analysis

    a = outage_analysis(runs[0][1])
    return outage_chart(runs, a) if a is not None else None


def outage_chart(runs: Sequence[Run], a: dict) -> Chart | None:
    """The story of an outage on one run (`a` = its `sim.campaign.analyse`): what was offered,
    sent and served; the queue that held it down; the login storm. Onset, trigger end and
    recovery are marked."""
    marks = [Mark(t, label, col) for label, t, col in (("down from", a["onset_s"], "black"),
                                                      ("trigger gone", a["trigger_end_s"], "#d62728"),
                                                      ("recovered", a["recovered_s"], "#2ca02c")) if t is not None]
    return chart(runs, "outage", "Outage: trigger, sustaining loop and recovery", [
        Panel("Commands offered, attempts sent and good completions", "per second", lines(runs, [
            ("attempts sent (retries included)", _rate("attempts")), ("commands offered", _rate("arrived")),
            ("good completions (goodput)", _rate("good"))])),
        Panel("Gateway queue (end of interval)", "queued commands",
              lines(runs, [("gateway queue", _series(N.of_service("queue", "gateway")))], gauge=True)),
        Panel("LLM busy (time average)", "% of capacity busy",
              lines(runs, [("LLM busy", _series(N.of_service("utilisation", "llm")))], scale=100.0),
              ylim=(0.0, 105.0)),
        Panel("Logins (re-logins after dropped sessions)", "per second",
              lines(runs, [("logins", _series(N.LOGINS, True)),
                           ("failed logins", _nonzero(_series(N.LOGIN_FAILED, True)))])),
    ], zoom=True, marks=marks, panel_height=2.3)


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("outage", "Outage: trigger, sustaining loop and recovery",
               "What was offered, what the clients sent (retries included) and what was served in time; the "
               "gateway queue and the LLM's busy time that held it down; logins. Marked: when it went down, "
               "when the trigger was gone, when it recovered.", _outage, place="top"),
    FigureSpec("load", "Offered load vs admitted vs goodput",
               "Commands per second offered, attempted (with retries), admitted, completed and within "
               "the e2e SLO (goodput); below, commands in the system.", _load),
    FigureSpec("latency", "Latency percentiles over time, per command class",
               "Per-interval p50/p90/p99 of completed commands, from the latency histograms; one column per "
               "class; dashed black line = the class's p99 SLO.", _latency),
    FigureSpec("services", "Service queues and utilisation",
               "Queue depth and utilisation per service; capacity when it changes (faults, autoscaling).",
               _services),
    FigureSpec("llm", "LLM fleet",
               "Continuous-batching fleet: batch size, KV-cache use, prefill/decode tokens per second, "
               "replicas up and preemptions (each shown when it is not zero or constant).", _llm),
    FigureSpec("failures", "Failures by reason and retries",
               "Commands that failed, by the reason of their last attempt; retries and failed attempts.",
               _failures),
    FigureSpec("stock", "Inventory and money at risk",
               "Units free, held and sold per inventory service; attempts answered conflict or sold out; "
               "payments, duplicate payments (charged, or prevented), commands failed after payment, refunds and "
               "wrong items, counted from the start.", _stock),
    FigureSpec("business", "Business KPIs",
               "Success rate per class against its SLO; orders, free-order cards redeemed and logins per "
               "second.", _business),
)


def build_figures(runs: Sequence[Run], place: str | None = None) -> list[tuple[FigureSpec, Chart]]:
    """Every figure that has something to show for these runs, in report order (only those of
    `place` when given)."""
    out = []
    for spec in FIGURES:
        if place is not None and spec.place != place:
            continue
        c = spec.build(runs)
        if c is not None:
            out.append((spec, c))
    return out
