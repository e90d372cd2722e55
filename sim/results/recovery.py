"""Down and recovered: the one definition of time to recover, for every consumer (the outage
analysis, the load test's per-fault recovery, reports and the terminal).

Per results interval, smoothed over a window (`Thresholds.window_s`):

- *success ratio* = good completions (within the class e2e SLO, `good:CLASS`) / commands
  offered (first attempts, `arrived:CLASS`), both summed over the window ending there;
- *down*: the ratio is below `stuck_frac` (the start-up, warm-up and first window, never is);
- *recovered at*: the first window end, once the window has slid past the trigger's end, at
  which the ratio is >= `recover_frac` and from which it never again falls below `stuck_frac`
  (before `until_s`, e.g. the next fault);
- *time to recover* = recovered at - the trigger's end; 0 when the run was never down (from
  `since_s`); None when it had not recovered by `until_s` or the end of the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.results import names as N
from sim.results.files import Results
from sim.results.summary import first_interval


@dataclass(frozen=True)
class Thresholds:
    """What counts as down and as recovered (fractions of offered commands that succeed)."""

    stuck_frac: float = 0.5
    recover_frac: float = 0.9
    window_s: float | None = None  # default: the run's length / 20, within [interval, 60 s]
    hold_s: float | None = None  # default: 5 smoothing windows
    tail_windows: int = 5  # "at the end" = the last this many smoothing windows
    demand_back_frac: float = 0.9
    demand_windows: int = 10  # demand is smoothed over this many windows to find when it fell


@dataclass(frozen=True)
class Health:
    """The per-interval success ratio of a run and where it was down; index i describes the
    window ending at `t_end_s[i]`."""

    ratio: np.ndarray
    down: np.ndarray
    t_end_s: np.ndarray
    window_intervals: int
    interval_s: float

    @property
    def window_s(self) -> float:
        return self.window_intervals * self.interval_s


def total(r: Results, metric: N.ClassCounter) -> np.ndarray:
    """A per-class counter summed over the run's classes."""
    out = np.zeros(int(r.meta["n_intervals"]))
    for c in r.meta["classes"]:
        s = r.series.get(N.of_class(metric, c))
        if s is not None:
            out += s
    return out


def smooth(x: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving sum over k intervals (the first k-1 use what there is)."""
    if k <= 1:
        return x.astype(float)
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    return c[idx] - c[np.maximum(0, idx - k)]


def health(r: Results, th: Thresholds | None = None) -> Health:
    """The smoothed success ratio and the down mask of a run (see the module docstring)."""
    th = th or Thresholds()
    dt, n = float(r.meta["interval_s"]), int(r.meta["n_intervals"])
    window_s = th.window_s or min(60.0, max(dt, n * dt / 20))
    k = max(1, round(window_s / dt))
    off_s, good_s = smooth(total(r, "arrived"), k), smooth(total(r, "good"), k)
    ratio = np.where(off_s > 0, good_s / np.maximum(off_s, 1e-12), 1.0)
    down = ratio < th.stuck_frac
    down[: max(k, first_interval(r.meta))] = False  # the start-up (warm-up, first window) is not an outage
    return Health(ratio, down, (np.arange(n) + 1) * dt, k, dt)


def first_after(h: Health, trigger_end_s: float) -> int:
    """Index of the first window that lies wholly after `trigger_end_s` (len when none does)."""
    return int(np.searchsorted(h.t_end_s, trigger_end_s + h.window_s - 1e-9, side="left"))


def recovered_index(h: Health, trigger_end_s: float, recover_frac: float, until_s: float | None = None) -> int | None:
    """Index of the window end at which the run recovered after `trigger_end_s`, or None."""
    stop = len(h.ratio) if until_s is None else int(np.searchsorted(h.t_end_s, until_s, side="right"))
    start = first_after(h, trigger_end_s)
    if start >= stop:
        return None
    downs = np.nonzero(h.down[start:stop])[0]
    from_i = start + (int(downs[-1]) + 1 if len(downs) else 0)
    ok = np.nonzero(h.ratio[from_i:stop] >= recover_frac)[0]
    return from_i + int(ok[0]) if len(ok) else None


def time_to_recover_s(r: Results, trigger_end_s: float, since_s: float = 0.0, until_s: float | None = None,
                      th: Thresholds | None = None) -> float | None:
    """Seconds from `trigger_end_s` until the run recovered (module docstring): 0 when it was
    never down between `since_s` and `until_s`; None when not recovered by then."""
    th = th or Thresholds()
    h = health(r, th)
    return recovery_from(h, trigger_end_s, th.recover_frac, since_s, until_s)


def recovery_from(h: Health, trigger_end_s: float, recover_frac: float, since_s: float = 0.0,
                  until_s: float | None = None) -> float | None:
    """`time_to_recover_s` on an already computed `Health` (the analysis needs both)."""
    lo = int(np.searchsorted(h.t_end_s, since_s, side="right"))
    hi = len(h.down) if until_s is None else int(np.searchsorted(h.t_end_s, until_s, side="right"))
    if not h.down[lo:hi].any():
        return 0.0
    i = recovered_index(h, trigger_end_s, recover_frac, until_s)
    return None if i is None else max(0.0, float(h.t_end_s[i]) - trigger_end_s)


def per_fault(r: Results, th: Thresholds | None = None) -> list[dict[str, Any]]:
    """One row per fault end in the run's events: when it ended, and `time_to_recover_s` from
    there, looking for trouble from the fault's start and for recovery until the next fault
    starts (a later fault's effect is not this one's)."""
    th = th or Thresholds()
    h = health(r, th)
    starts = sorted(float(e["t_s"]) for e in r.events if e.get("kind") == "fault_start")
    rows = []
    for e in r.events:
        if e.get("kind") != "fault_end":
            continue
        end = float(e["t_s"])
        began = max([s for s in starts if s <= end], default=0.0)
        later = [s for s in starts if s > end]
        ttr = recovery_from(h, end, th.recover_frac, since_s=began, until_s=later[0] if later else None)
        rows.append({"target": e.get("target"), "fault_kind": e.get("fault_kind"), "end_s": end,
                     "recovered": ttr is not None, "recovery_s": ttr})
    return rows


def ratio_of(a: float, b: float) -> float:
    return float(a / b) if b else math.nan
