"""Metastability analytics on a run's results: did the system stay down after its trigger was
gone, how long did it take to recover, and how much work did it burn per useful result?

Definitions (all per results interval, smoothed over `window_s`):

- *success ratio* = good completions / commands offered (first attempts). Good is the results'
  `good:CLASS` (succeeded within the class e2e SLO).
- *onset*: the first time the ratio falls below `stuck_frac`.
- *trigger end*: the end of the last fault; when demand itself was the trigger (it rose above
  capacity, then fell), the later of that and the first time after onset that offered demand
  (the scenario's session rate when given; else sessions started, i.e. logins, when there is an
  auth service, since commands per session fall during an outage; else commands; smoothed over `demand_windows` windows) is back below `demand_back_frac` x its level at onset.
- *stuck at end*: the ratio over the last `tail_windows` smoothing windows is below
  `stuck_frac` although the trigger is gone.
- *recovered at*: the first time after the trigger end at which the ratio is >= `recover_frac`
  and never again falls below `stuck_frac`. `time_to_recover_s` = recovered at - trigger end
  (0 when the ratio never fell below `stuck_frac`; None when not recovered by the end).
- *metastable*: down (ratio < `stuck_frac`) for at least `hold_s` after the trigger ended.
- *amplification*: attempts per command, and work per good result = attempts admitted (by the
  gateway, or sent into the stages when there is none) per good completion; both for the whole
  run and for the degraded window (onset to recovery, or to the end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim.results import Results, first_interval
from sim.scenario import Scenario


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


def _total(series: dict[str, np.ndarray], prefix: str, classes: list[str], n: int) -> np.ndarray:
    out = np.zeros(n)
    for c in classes:
        s = series.get(f"{prefix}:{c}")
        if s is not None:
            out += s
    return out


def _smooth(x: np.ndarray, k: int) -> np.ndarray:
    """Trailing moving sum over k intervals (the first k-1 use what there is)."""
    if k <= 1:
        return x.astype(float)
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    return c[idx] - c[np.maximum(0, idx - k)]


def _fault_end_s(results: Results) -> float | None:
    ends = [e["t_s"] for e in results.events if e.get("kind") == "fault_end"]
    starts = [e["t_s"] + e.get("duration_s", 0.0) for e in results.events if e.get("kind") == "fault_start"]
    both = ends + starts  # a fault still in force at the horizon has a start but no end
    return max(both) if both else None


def analyse(results: Results, th: Thresholds | None = None, trigger_end_s: float | None = None,
            scenario: Scenario | None = None) -> dict[str, Any]:
    """Metastability KPIs of one run (see the module docstring). Times are seconds from t=0.
    With the `scenario`, demand is its session rate curve (exact); without, it is read from the
    results (logins, else commands)."""
    th = th or Thresholds()
    meta, series = results.meta, results.series
    dt, n = float(meta["interval_s"]), int(meta["n_intervals"])
    classes = list(meta["classes"])
    offered = _total(series, "arrived", classes, n)
    good = _total(series, "good", classes, n)
    attempts = _total(series, "attempts", classes, n)
    admitted = _total(series, "admitted", classes, n)
    window_s = th.window_s or min(60.0, max(dt, n * dt / 20))
    k = max(1, round(window_s / dt))
    off_s, good_s = _smooth(offered, k), _smooth(good, k)
    ratio = np.where(off_s > 0, good_s / np.maximum(off_s, 1e-12), 1.0)
    t_end = (np.arange(n) + 1) * dt  # a value at index i describes the window ending at t_end[i]

    down = ratio < th.stuck_frac
    down[: max(k, first_interval(meta))] = False  # the start-up (warm-up, first window) is not an outage
    onset_i = int(np.argmax(down)) if down.any() else None
    # demand as users bring it: sessions started (logins) when there is an auth service, since
    # commands per session fall during an outage (the next command waits for the failing one)
    logins = series.get("logins")
    launch = scenario is not None and scenario.population is not None and scenario.population.launch is not None
    if launch and "sessions" in series:
        opened = series["sessions"]  # users open the app (sim.des.users): their sessions are the demand
    elif scenario is not None and scenario.arrivals.process != "trace":
        from sim.arrivals import RateCurve

        opened = RateCurve.of(scenario)((np.arange(n) + 0.5) * dt) * dt
    else:
        opened = logins if logins is not None and logins.sum() > 0 else offered
    demand = _smooth(opened, k * th.demand_windows)
    trig, how = _trigger_end(results, demand, onset_i, t_end, th, trigger_end_s)
    after = t_end > (trig if trig is not None else -math.inf) + window_s  # let the window slide past the trigger
    first_after = int(np.argmax(after)) if after.any() else n
    tail_n = max(1, min(n - first_after, k * th.tail_windows))
    tail = slice(n - tail_n, n)
    tail_ratio = float(good[tail].sum() / offered[tail].sum()) if offered[tail].sum() else math.nan
    stuck_at_end = bool(after.any() and tail_ratio < th.stuck_frac)
    rec_i = _recovered_index(ratio, down, first_after, th.recover_frac) if after.any() else None
    hold_s = th.hold_s if th.hold_s is not None else 5 * k * dt
    down_after_s = float(down[first_after:].sum() * dt)
    deg = slice(onset_i if onset_i is not None else n, rec_i if rec_i is not None else n)
    return {
        "stuck_frac": th.stuck_frac, "recover_frac": th.recover_frac, "window_s": k * dt,
        "onset_s": _t(onset_i, t_end), "trigger_end_s": trig, "trigger": how,
        "recovered_s": _t(rec_i, t_end),
        "time_to_recover_s": _time_to_recover(onset_i, rec_i, t_end, trig),
        "down_s": float(down.sum() * dt),
        "down_after_trigger_s": down_after_s,
        "metastable": bool(down_after_s >= hold_s),
        "stuck_at_end": stuck_at_end,
        "tail_success_ratio": tail_ratio,
        "goodput_fraction": _ratio(good.sum(), offered.sum()),
        "attempts_per_command": _ratio(attempts.sum(), offered.sum()),
        "work_per_good": _ratio(admitted.sum(), good.sum()),
        "attempts_per_command_degraded": _ratio(attempts[deg].sum(), offered[deg].sum()),
        "work_per_good_degraded": _ratio(admitted[deg].sum(), good[deg].sum()),
        "logins_per_command_degraded": _ratio(series.get("logins", np.zeros(n))[deg].sum(), offered[deg].sum()),
    }


def _trigger_end(results: Results, off_s: np.ndarray, onset_i: int | None, t_end: np.ndarray, th: Thresholds,
                 given: float | None) -> tuple[float | None, str]:
    if given is not None:
        return given, "given"
    fault = _fault_end_s(results)
    demand = None
    if onset_i is not None:
        level = off_s[onset_i]
        later = np.nonzero(off_s[onset_i:] < th.demand_back_frac * level)[0]
        if len(later):
            demand = float(t_end[onset_i + later[0]])
    if fault is None and demand is None:
        return None, "none"
    if demand is None or (fault is not None and fault >= demand):
        return fault, "faults"
    return demand, ("demand" if fault is None else "faults+demand")


def _recovered_index(ratio: np.ndarray, down: np.ndarray, start: int, recover_frac: float) -> int | None:
    """First index >= start with ratio >= recover_frac and no later index down."""
    n = len(ratio)
    downs = np.nonzero(down[start:])[0]
    from_i = start + (int(downs[-1]) + 1 if len(downs) else 0)
    ok = np.nonzero(ratio[from_i:] >= recover_frac)[0]
    return from_i + int(ok[0]) if len(ok) and from_i < n else None


def _time_to_recover(onset_i: int | None, rec_i: int | None, t_end: np.ndarray, trig: float | None) -> float | None:
    """0 when it never went down; None when it had not recovered by the end."""
    if onset_i is None:
        return 0.0
    if rec_i is None:
        return None
    return max(0.0, float(t_end[rec_i]) - (trig or 0.0))


def _t(i: int | None, t_end: np.ndarray) -> float | None:
    return float(t_end[i]) if i is not None else None


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else math.nan


def format_analysis(a: dict[str, Any]) -> str:
    """A few lines for the terminal."""

    def s(x: Any) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.0f} s" if isinstance(x, float) else str(x)

    verdict = ("STUCK: still down after the trigger ended" if a["stuck_at_end"]
               else "metastable: stayed down after the trigger, then recovered" if a["metastable"]
               else "recovered")
    return "\n".join([
        f"metastability: {verdict}",
        f"  onset {s(a['onset_s'])}, trigger ended {s(a['trigger_end_s'])} ({a['trigger']}), "
        f"recovered {s(a['recovered_s'])}, time to recover {s(a['time_to_recover_s'])}",
        f"  down after the trigger {s(a['down_after_trigger_s'])}; goodput {a['goodput_fraction']:.1%} of offered",
        f"  amplification: {a['attempts_per_command']:.2f} attempts/command "
        f"({a['attempts_per_command_degraded']:.2f} while degraded), "
        f"{a['work_per_good']:.2f} admitted attempts per good result ({a['work_per_good_degraded']:.2f} while degraded)",
    ])
