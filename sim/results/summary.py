"""KPIs and SLO verdicts from a run's results, over the intervals after warm-up."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.results import names as N
from sim.results.histogram import LogHistogram
from sim.results.names import HIST_METRICS, REASONS

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
SLO_METRICS = {"ttft_p99_s": ("ttft", 0.99), "tpot_p99_s": ("tpot", 0.99), "e2e_p99_s": ("e2e", 0.99)}


def first_interval(meta: dict[str, Any]) -> int:
    """Index of the first interval whose start is at or after the warm-up."""
    return math.ceil(meta.get("warmup_s", 0.0) / meta["interval_s"] - 1e-9)


def window_histogram(triples: np.ndarray, start: int) -> LogHistogram:
    rows = triples[triples[:, 0] >= start] if len(triples) else triples
    return LogHistogram.from_arrays(rows[:, 1], rows[:, 2]) if len(rows) else LogHistogram()


def _window_s(meta: dict[str, Any], n_intervals: int, start: int) -> float:
    """Seconds from the first kept interval to the end of the run: the last interval is short
    when `duration_s` is not a multiple of `interval_s`, and rates must not count its missing part."""
    end = min(n_intervals * meta["interval_s"], meta.get("duration_s") or math.inf)
    return max(0.0, end - start * meta["interval_s"])


def summarize(meta: dict[str, Any], series: dict[str, np.ndarray], hists: dict[str, np.ndarray]) -> dict[str, Any]:
    """The summary written as summary.json: totals, per-class KPIs, SLO verdicts."""
    start = first_interval(meta)
    window_s = _window_s(meta, len(next(iter(series.values()))), start) if series else 0.0

    def total(name: str) -> float:
        s = series.get(name)
        return float(s[start:].sum()) if s is not None else 0.0

    classes: dict[str, Any] = {}
    for c in meta["classes"]:
        completed = total(N.of_class("completed", c))
        by_reason = {r: total(N.failed(c, r)) for r in REASONS}
        ended = completed + sum(by_reason.values())
        arrived = total(N.of_class("arrived", c))
        kpi: dict[str, Any] = {
            "arrived": arrived,
            "completed": completed,
            "failed": by_reason,
            "success_rate": completed / ended if ended else math.nan,
            "goodput_per_s": total(N.of_class("good", c)) / window_s if window_s else math.nan,
            "attempts_per_command": total(N.of_class("attempts", c)) / arrived if arrived else math.nan,
        }
        for m in HIST_METRICS:
            h = window_histogram(hists.get(N.hist(m, c), np.zeros((0, 3), np.int64)), start)
            kpi[m] = {"count": h.n, "mean": h.mean, **{k: h.quantile(q) for k, q in QUANTILES.items()}}
        classes[c] = kpi
    arrived = sum(k["arrived"] for k in classes.values())
    completed = sum(k["completed"] for k in classes.values())
    failed = sum(sum(k["failed"].values()) for k in classes.values())
    out = {
        "window_s": window_s,
        "arrived": arrived,
        "completed": completed,
        "failed": failed,
        "success_rate": completed / (completed + failed) if completed + failed else math.nan,
        "goodput_per_s": sum(k["goodput_per_s"] for k in classes.values()),
        "throughput_per_s": completed / window_s if window_s else math.nan,
        "attempts_per_command": sum(total(N.of_class("attempts", c)) for c in classes) / arrived if arrived else math.nan,
        "orders": total(N.ORDERS),
        "orders_per_s": total(N.ORDERS) / window_s if window_s else math.nan,
        **_funnel(series, total),
        "classes": classes,
        "slos": slo_verdicts(meta.get("slos", {}), classes),
    }
    if N.PAYMENTS in series:
        out["money"] = {name: total(name) for name in N.MONEY_COUNTERS}
    stock = inventory_summary(meta, series, start)
    if stock:
        out["inventory"] = stock
    return out


def inventory_summary(meta: dict[str, Any], series: dict[str, np.ndarray], start: int) -> dict[str, Any]:
    """Per inventory service (a `sold:SVC` series): hold answers and units sold after warm-up,
    units left at the end, and when it happened, in seconds from the start: the first sold-out
    answer; the end of the first interval with no unit free (of the hot items; of all), and with
    no unit free nor held (everything sold)."""
    dt = float(meta["interval_s"])
    out: dict[str, Any] = {}
    for name in sorted(series):
        parts = N.split(name)
        if parts[0] != "sold" or len(parts) != 2:
            continue
        svc = parts[1]
        got = {m: series.get(N.of_stock(m, svc)) for m in N.STOCK_METRICS}
        row: dict[str, Any] = {m: float(v[start:].sum()) for m, v in got.items()
                               if v is not None and m not in ("stock_free", "stock_held", "hot_free")}
        free, held = got["stock_free"], got["stock_held"]
        if free is not None and held is not None and len(free):
            row["free_at_end"], row["held_at_end"] = float(free[-1]), float(held[-1])
            row["none_free_at_s"] = _first_end(free <= 0, dt)
            row["all_sold_at_s"] = _first_end((free + held) <= 0, dt)
        if got["hot_free"] is not None:
            row["hot_none_free_at_s"] = _first_end(got["hot_free"] <= 0, dt)
        answers = got["sold_out_answers"]
        first = np.flatnonzero(answers > 0) if answers is not None else np.zeros(0, int)
        row["first_sold_out_answer_s"] = float(first[0] * dt) if len(first) else None
        out[svc] = row
    return out


def _first_end(flags: np.ndarray, dt: float) -> float | None:
    """The end (seconds) of the first interval where `flags` holds, or None."""
    hit = np.flatnonzero(flags)
    return float((hit[0] + 1) * dt) if len(hit) else None


def _funnel(series: dict[str, np.ndarray], total) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Order KPIs when the run has a funnel (sim.funnel): attempted (the user went ahead),
    converted, charged but told it failed, charged twice; conversion per funnel class and user
    state (`buy:CLASS:STATE` commands, `buy_outcome:CLASS:STATE:OUTCOME` of those that
    succeeded); and, for a launch, its users and cards."""
    if N.ORDERS_ATTEMPTED not in series:
        return {}
    out: dict[str, Any] = {
        "orders_attempted": total(N.ORDERS_ATTEMPTED),
        "orders_failed_after_payment": total(N.FAILED_AFTER_PAYMENT),
        "payments": total(N.PAYMENTS),
        "payments_duplicated": total(N.PAYMENTS_DUPLICATED),
        "cards_redeemed": total(N.CARDS_REDEEMED),
    }
    funnel: dict[str, Any] = {}
    for name in series:
        parts = N.split(name)
        if parts[0] == "buy":
            _, cls, state = parts
            arrived = total(name)
            outcomes = {N.split(k)[3]: total(k) for k in series if N.split(k)[:3] == ("buy_outcome", cls, state)}
            funnel.setdefault(cls, {})[state] = {
                "arrived": arrived, "outcomes": outcomes,
                "conversion": outcomes.get("ordered", 0.0) / arrived if arrived else math.nan}
    out["funnel"] = funnel
    if N.USERS_RETURNING in series:
        out["users"] = {k: total(k) for k in N.LAUNCH_COUNTERS}
    return out


def slo_verdicts(slos: dict[str, dict[str, float | None]], classes: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per SLO target: actual value, pass/fail, and the margin as a fraction of the target
    (positive = room left; negative = by how much it is missed)."""
    rows = []
    for cls, targets in slos.items():
        for key, target in targets.items():
            if target is None or cls not in classes:
                continue
            if key == "success_rate":
                actual = classes[cls]["success_rate"]
                ok = actual >= target
                margin = (actual - target) / target if target else math.nan
            else:
                metric, _ = SLO_METRICS[key]
                actual = classes[cls][metric]["p99"]
                ok = bool(actual <= target)
                margin = (target - actual) / target
            if isinstance(actual, float) and math.isnan(actual):
                ok, margin = False, math.nan
            rows.append({"class": cls, "slo": key, "target": target, "actual": actual, "pass": bool(ok), "margin": margin})
    return rows
