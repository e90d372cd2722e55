"""The one time axis of a run: clock time when the run's load follows the clock, elapsed time
otherwise. Reports, the terminal and the analyses all state times with these functions, so the
same instant reads the same everywhere ("14:27", or "t = 1 min 25 s").

A run is *on a clock* when its scenario sets `run.start_hour` to something other than midnight,
or when its arrival rate comes from the population's day (the diurnal profile is in clock time,
so even a run from 00:00 is a day). A fixed-rate run from t = 0 (a load test, a queueing case)
has no meaningful clock and is shown in time since start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

DAY_S = 86400.0


def start_hour(meta: Mapping[str, Any], scenario: Mapping[str, Any] | None = None) -> float | None:
    """Clock hour of t = 0 when the run is on a clock (see the module docstring), else None."""
    hour = meta.get("start_hour")
    if hour is None and scenario is not None:
        hour = (scenario.get("run") or {}).get("start_hour")
    if hour is None:
        return None
    if float(hour) != 0.0:
        return float(hour)
    if scenario is None:
        return None
    arrivals = scenario.get("arrivals") or {}
    from_day = (scenario.get("population") is not None and arrivals.get("rate_per_s") is None
                and arrivals.get("process") != "trace")
    return 0.0 if from_day else None


def clock(t_s: float, hour0: float, span_s: float = 0.0, seconds: bool = False) -> str:
    """Clock time of `t_s` seconds after a start at `hour0`: "14:27", "14:27:05" with `seconds`,
    "day 2 14:27" when the run (`span_s`) is longer than a day."""
    total = hour0 * 3600.0 + t_s
    day, rest = divmod(total, DAY_S)
    rest = round(rest) if seconds else round(rest / 60) * 60
    if rest >= DAY_S:  # 23:59:40 rounded to the minute is the next day's 00:00
        day, rest = day + 1, rest - DAY_S
    h, m, s = int(rest // 3600), int(rest % 3600 // 60), int(rest % 60)
    text = f"{h:02d}:{m:02d}:{s:02d}" if seconds else f"{h:02d}:{m:02d}"
    start_day = math.floor(hour0 * 3600.0 / DAY_S)
    return f"day {int(day - start_day) + 1} {text}" if span_s > DAY_S else text


def duration(seconds: float | None) -> str:
    """A length of time a person reads at a glance: "3.5 s", "45 s", "1 min 25 s", "2 h 46 min", "3 d 4 h"."""
    if seconds is None or not math.isfinite(seconds):
        return "–"
    s = round(abs(seconds))
    sign = "−" if seconds < 0 else ""
    if abs(seconds) < 59.95:  # short spans keep their tenths: a fault from 2 s to 3.5 s
        return f"{sign}{abs(seconds):.3g} s" if abs(seconds) < 10 else f"{sign}{abs(seconds):.0f} s"
    if s < 3600:
        m, r = divmod(s, 60)
        return f"{sign}{m} min" + (f" {r} s" if r and m < 10 else "")
    if s < 2 * DAY_S:
        h, m = divmod(round(s / 60), 60)
        return f"{sign}{h} h" + (f" {m} min" if m else "")
    d, h = divmod(round(s / 3600), 24)
    return f"{sign}{d} d" + (f" {h} h" if h else "")


def needs_seconds(interval_s: float) -> bool:
    """Clock times carry seconds when the results resolve less than a minute."""
    return interval_s < 60


def at(t_s: float | None, hour0: float | None, span_s: float = 0.0, interval_s: float = 60.0) -> str:
    """An instant of the run: its clock time when on a clock, else "t = 1 min 25 s"."""
    if t_s is None or not math.isfinite(t_s):
        return "–"
    if hour0 is None:
        return f"t = {duration(t_s)}"
    return clock(t_s, hour0, span_s, seconds=needs_seconds(interval_s) and round(t_s) % 60 != 0)


def span(a_s: float, b_s: float, hour0: float | None, run_s: float = 0.0, interval_s: float = 60.0) -> str:
    """A window of the run: "14:20–14:21" or "t = 60 s–90 s"."""
    if hour0 is None:
        return f"t = {duration(a_s)}–{duration(b_s)}"
    return f"{at(a_s, hour0, run_s, interval_s)}–{at(b_s, hour0, run_s, interval_s)}"
