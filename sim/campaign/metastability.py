"""Metastability analytics on a run's results: did the system stay down after its trigger was
gone, how long did it take to recover, and how much work did it burn per useful result?

Down, recovered and time to recover have one definition, in `sim.results.recovery` (the
success ratio = good completions / commands offered, smoothed over `window_s`; down = below
`stuck_frac`; recovered = back at `recover_frac` for good). On top of it:

- *onset*: the first time the ratio falls below `stuck_frac`.
- *trigger end*: the end of the last fault; when demand itself was the trigger (it rose above
  capacity, then fell), the later of that and the first time after onset that offered demand
  (the scenario's session rate when given; else sessions started, i.e. logins, when there is an
  auth service, since commands per session fall during an outage; else commands; smoothed over
  `demand_windows` windows) is back below `demand_back_frac` x its level at onset.
- *time to recover*: `sim.results.recovery.time_to_recover_s` from the trigger end.
- *time down*: how long the ratio was below `stuck_frac` in all.
- *stuck at end*: the ratio over the last `tail_windows` smoothing windows is below
  `stuck_frac` although the trigger is gone.
- *metastable*: down (ratio < `stuck_frac`) for at least `hold_s` after the trigger ended.
- *amplification*: attempts per command, and work per good result = attempts admitted (by the
  gateway, or sent into the stages when there is none) per good completion; both for the whole
  run and for the degraded window (onset to recovery, or to the end).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sim.results import Results
from sim.results import clock as C
from sim.results import names as N
from sim.results.recovery import (
    Thresholds,
    first_after,
    health,
    ratio_of,
    recovered_index,
    recovery_from,
    smooth,
    total,
)
from sim.scenario import Scenario

__all__ = ["Thresholds", "analyse", "format_analysis", "losses"]


def _fault_end_s(results: Results) -> float | None:
    ends = [e["t_s"] for e in results.events if e.get("kind") == "fault_end"]
    starts = [e["t_s"] + e.get("duration_s", 0.0) for e in results.events if e.get("kind") == "fault_start"]
    both = ends + starts  # a fault still in force at the horizon has a start but no end
    return max(both) if both else None


def _demand(results: Results, scenario: Scenario | None, offered: np.ndarray) -> np.ndarray:
    """Sessions started per interval: for a launch, the users' sessions as simulated; the
    scenario's session rate when given (exact); else
    logins when there is an auth service, since commands per session fall during an outage
    (the next command waits for the failing one); else commands offered."""
    dt, n = float(results.meta["interval_s"]), int(results.meta["n_intervals"])
    launch = scenario is not None and scenario.population is not None and scenario.population.launch is not None
    if launch and "sessions" in results.series:
        return np.asarray(results.series["sessions"])  # users open the app (sim.des.users): that is the demand
    if scenario is not None and scenario.arrivals.process != "trace":
        from sim.arrivals import RateCurve

        return np.asarray(RateCurve.of(scenario)((np.arange(n) + 0.5) * dt) * dt)
    logins = results.series.get(N.LOGINS)
    return logins if logins is not None and logins.sum() > 0 else offered


def analyse(results: Results, th: Thresholds | None = None, trigger_end_s: float | None = None,
            scenario: Scenario | None = None) -> dict[str, Any]:
    """Metastability KPIs of one run (see the module docstring). Times are seconds from t=0.
    With the `scenario`, demand is its session rate curve (exact); without, it is read from the
    results (logins, else commands). `start_hour` is the clock hour of t = 0 when the run is on
    a clock (`sim.results.clock`), for stating the times."""
    th = th or Thresholds()
    meta, series = results.meta, results.series
    dt, n = float(meta["interval_s"]), int(meta["n_intervals"])
    offered, good = total(results, "arrived"), total(results, "good")
    attempts, admitted = total(results, "attempts"), total(results, "admitted")
    h = health(results, th)
    k, down = h.window_intervals, h.down
    onset_i = int(np.argmax(down)) if down.any() else None
    demand = smooth(_demand(results, scenario, offered), k * th.demand_windows)
    trig, how = _trigger_end(results, demand, onset_i, h.t_end_s, th, trigger_end_s)
    first = first_after(h, trig if trig is not None else -math.inf)
    tail_n = max(1, min(n - first, k * th.tail_windows))
    tail = slice(n - tail_n, n)
    tail_ratio = ratio_of(good[tail].sum(), offered[tail].sum())
    stuck_at_end = bool(first < n and tail_ratio < th.stuck_frac)
    rec_i = recovered_index(h, trig if trig is not None else 0.0, th.recover_frac)
    hold_s = th.hold_s if th.hold_s is not None else 5 * k * dt
    down_after_s = float(down[first:].sum() * dt)
    deg = slice(onset_i if onset_i is not None else n, rec_i if rec_i is not None else n)
    return {
        "stuck_frac": th.stuck_frac, "recover_frac": th.recover_frac, "window_s": h.window_s,
        "start_hour": C.start_hour(meta, results.scenario if scenario is None else scenario.model_dump(mode="json")),
        "duration_s": n * dt, "interval_s": dt,
        "onset_s": _t(onset_i, h.t_end_s), "trigger_end_s": trig, "trigger": how,
        "recovered_s": _t(rec_i, h.t_end_s),
        "time_to_recover_s": recovery_from(h, trig if trig is not None else 0.0, th.recover_frac),
        "down_s": float(down.sum() * dt),
        "down_after_trigger_s": down_after_s,
        "metastable": bool(down_after_s >= hold_s),
        "stuck_at_end": stuck_at_end,
        "tail_success_ratio": tail_ratio,
        "goodput_fraction": ratio_of(good.sum(), offered.sum()),
        "attempts_per_command": ratio_of(attempts.sum(), offered.sum()),
        "work_per_good": ratio_of(admitted.sum(), good.sum()),
        "attempts_per_command_degraded": ratio_of(attempts[deg].sum(), offered[deg].sum()),
        "work_per_good_degraded": ratio_of(admitted[deg].sum(), good[deg].sum()),
        "logins_per_command_degraded": ratio_of(series.get(N.LOGINS, np.zeros(n))[deg].sum(), offered[deg].sum()),
    }


def losses(results: Results, scenario: Scenario | None) -> dict[str, Any]:
    """What the run cost in commands and orders over its post-warm-up window, in the simulated
    cell and at full scale (divided by `population.scale` x `arrivals.scale`; `full_scale` None
    when the scenario is not a cell). Orders lost = orders users meant to place that were not
    placed: every command of an order-placing class, or for a funnel class those whose user went
    ahead and met no stock-out or failed payment (needs the scenario to know which classes order)."""
    s = results.summary
    failed = float(s.get("failed") or 0.0)
    cell = 1.0
    order_classes: list[str] = []
    refused = 0.0  # funnel commands that went ahead but met a stock-out or a failed payment
    if scenario is not None:
        cell = (scenario.population.scale if scenario.population else 1.0) * scenario.arrivals.scale
        order_classes = [c for c, k in scenario.workload.classes.items() if k.places_order and k.funnel is None]
        refused = sum(st["outcomes"].get(o, 0.0) for states in (s.get("funnel") or {}).values()
                      for st in states.values() for o in ("out_of_stock", "payment_error"))
    wanted = sum(s["classes"][c]["arrived"] for c in order_classes if c in s["classes"])
    wanted += float(s.get("orders_attempted") or 0.0) - refused  # a funnel class: what users meant to order
    lost = max(0.0, wanted - float(s.get("orders") or 0.0)) if scenario is not None else None
    full = 1.0 / cell if cell < 1.0 else None
    return {
        "commands": float(s.get("arrived") or 0.0), "commands_failed": failed,
        "orders": float(s.get("orders") or 0.0), "orders_wanted": wanted if scenario is not None else None,
        "orders_lost": lost, "cell": cell, "full_scale": full,
        "commands_failed_full_scale": failed * full if full else None,
        "orders_lost_full_scale": lost * full if full and lost is not None else None,
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


def _t(i: int | None, t_end: np.ndarray) -> float | None:
    return float(t_end[i]) if i is not None else None


def format_analysis(a: dict[str, Any]) -> str:
    """A few lines for the terminal, with times on the run's one time axis (`sim.results.clock`)
    and time to recover as the reports state it."""
    hour0, run_s, dt = a.get("start_hour"), a.get("duration_s") or 0.0, a.get("interval_s") or 60.0

    def at(x: float | None) -> str:
        return C.at(x, hour0, run_s, dt)

    verdict = ("STUCK: still down after the trigger ended" if a["stuck_at_end"]
               else "metastable: stayed down after the trigger, then recovered" if a["metastable"]
               else "recovered")
    ttr = a["time_to_recover_s"]
    if a["onset_s"] is None:
        return (f"metastability: never down (goodput at least {a['stuck_frac']:.0%} of offered throughout); "
                f"goodput {a['goodput_fraction']:.1%} of offered, {a['attempts_per_command']:.2f} attempts/command")
    return "\n".join([
        f"metastability: {verdict}",
        f"  down from {at(a['onset_s'])}, trigger ended {at(a['trigger_end_s'])} ({a['trigger']}), "
        f"recovered {at(a['recovered_s'])}; time to recover "
        + ("– (no trigger to time it from)" if a["trigger_end_s"] is None
           else "not recovered" if ttr is None else C.duration(ttr)),
        f"  time down {C.duration(a['down_s'])}; goodput {a['goodput_fraction']:.1%} of offered",
        f"  amplification: {a['attempts_per_command']:.2f} attempts/command "
        f"({a['attempts_per_command_degraded']:.2f} while degraded), "
        f"{a['work_per_good']:.2f} admitted attempts per good result ({a['work_per_good_degraded']:.2f} while degraded)",
    ])
