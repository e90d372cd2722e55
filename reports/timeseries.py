"""Per-interval quantities the figures draw: rates, quantiles from histograms, fault windows.

Everything here is numpy on a `Results`; nothing draws. Quantiles come from the merged log
histograms, so a per-interval p99 has the same <= 1% relative error as the run's p99.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sim.results import Results, bucket_value


@dataclass(frozen=True)
class Window:
    """A span of the run to shade: a fault, or the warm-up."""

    start_s: float
    end_s: float
    label: str


def interval_quantiles(triples: np.ndarray, n_intervals: int, qs: tuple[float, ...]) -> np.ndarray:
    """Array (len(qs), n_intervals) of per-interval quantiles (NaN where an interval has no
    samples) from histogram rows (interval, bucket, count). Same rank rule as LogHistogram."""
    out = np.full((len(qs), n_intervals), np.nan)
    if not len(triples):
        return out
    rows = triples[np.lexsort((triples[:, 1], triples[:, 0]))]
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 0] < n_intervals) & (rows[:, 2] > 0)]
    if not len(rows):
        return out
    iv, counts = rows[:, 0], rows[:, 2]
    cum = np.cumsum(counts)
    per = np.bincount(iv, weights=counts, minlength=n_intervals)
    present = np.flatnonzero(per > 0)
    end = np.cumsum(per)  # cumulative count at the end of each interval
    base = end - per
    values = np.asarray(bucket_value(rows[:, 1]))
    for k, q in enumerate(qs):
        rank = np.maximum(1, np.ceil(q * per[present] - 1e-9))
        idx = np.searchsorted(cum, base[present] + rank, side="left")
        out[k, present] = values[np.minimum(idx, len(values) - 1)]
    return out


def hist_count(triples: np.ndarray, n_intervals: int) -> np.ndarray:
    """Samples per interval in a histogram."""
    if not len(triples):
        return np.zeros(n_intervals)
    return np.bincount(triples[:, 0], weights=triples[:, 2], minlength=n_intervals)[:n_intervals]


def classes(r: Results) -> list[str]:
    return list(r.meta.get("classes", []))


def total(r: Results, prefix: str) -> np.ndarray | None:
    """Sum of every series named `prefix...` (e.g. 'arrived:' over classes); None if none exist."""
    parts = [v for k, v in r.series.items() if k.startswith(prefix)]
    return np.sum(parts, axis=0) if parts else None


def per_s(r: Results, x: np.ndarray | None) -> np.ndarray | None:
    """A per-interval count as a rate per second."""
    return None if x is None else x / r.meta["interval_s"]


def labelled(r: Results, prefix: str) -> dict[str, np.ndarray]:
    """Series `prefix{label}` keyed by label, e.g. labelled(r, 'queue:') -> {'llm': ...}."""
    return {k[len(prefix):]: v for k, v in sorted(r.series.items()) if k.startswith(prefix)}


def failures_by_reason(r: Results) -> dict[str, np.ndarray]:
    """Failed commands per interval by reason, summed over classes; reasons that never occur left out."""
    out: dict[str, np.ndarray] = {}
    for k, v in r.series.items():
        parts = k.split(":")
        if parts[0] == "failed" and len(parts) == 3 and v.any():
            out[parts[2]] = out.get(parts[2], 0) + v
    return dict(sorted(out.items(), key=lambda kv: -float(np.sum(kv[1]))))


def success_rate(r: Results, cls: str) -> np.ndarray:
    """completed / (completed + failed) per interval for a class (NaN where nothing ended)."""
    done = r.series.get(f"completed:{cls}", np.zeros(r.meta["n_intervals"]))
    failed = total(r, f"failed:{cls}:")
    ended = done + (failed if failed is not None else 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ended > 0, done / np.where(ended > 0, ended, 1), np.nan)


def fault_windows(r: Results) -> list[Window]:
    """Fault spans from the event log: each fault_start with its duration (or its fault_end)."""
    out = []
    end_s = r.meta["n_intervals"] * r.meta["interval_s"]
    for e in r.events:
        if e.get("kind") != "fault_start":
            continue
        start = float(e["t_s"])
        dur = e.get("duration_s")
        stop = start + float(dur) if dur is not None else _matching_end(r, e, end_s)
        out.append(Window(start, min(stop, end_s), _fault_label(e)))
    return out


def _matching_end(r: Results, start: dict, default: float) -> float:
    for e in r.events:
        if e.get("kind") == "fault_end" and e.get("target") == start.get("target") and e["t_s"] >= start["t_s"]:
            return float(e["t_s"])
    return default


def _fault_label(e: dict) -> str:
    kind, mag = e.get("fault_kind", "fault"), e.get("magnitude")
    if mag is None:
        what = kind
    elif kind in ("capacity_loss", "error_rate", "session_invalidation"):
        what = f"{kind} {float(mag):.0%}"
    elif kind == "slowdown":
        what = f"slowdown ×{float(mag):g}"
    else:
        what = kind
    return f"{what} on {e.get('target', '?')}"


def warmup_window(r: Results) -> Window | None:
    w = float(r.meta.get("warmup_s", 0.0) or 0.0)
    return Window(0.0, w, "warm-up (not in KPIs)") if w > 0 else None


def time_axis(r: Results) -> tuple[np.ndarray, float, str]:
    """Interval mid-points scaled to a readable unit: (t, seconds per unit, unit name)."""
    dur = r.meta["n_intervals"] * r.meta["interval_s"]
    scale, unit = (1.0, "s") if dur <= 900 else (60.0, "min") if dur <= 4 * 3600 else (3600.0, "h")
    mid = (np.arange(r.meta["n_intervals"]) + 0.5) * r.meta["interval_s"]
    return mid / scale, scale, unit


def finite_max(*arrays: np.ndarray | None) -> float:
    vals = [float(np.nanmax(a)) for a in arrays if a is not None and np.isfinite(a).any()]
    return max(vals) if vals else math.nan
