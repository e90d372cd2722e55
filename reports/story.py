"""The headline of a report: what happened, when, for how long, and what it cost in commands and
orders (scaled to the whole app when the scenario simulates a cell), then the SLO verdict.

The numbers come from the analyses, never from here: onset, time down and time to recover from
`sim.campaign.analyse` (whose time to recover is `sim.results.recovery`'s, the same the load
test and the terminal state), losses from `sim.campaign.losses`, times on the one time axis of
`sim.results.clock`. No matplotlib here, so the terminal can print the same headline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from reports import tables
from reports.chart import TimeAxis
from reports.timeseries import fault_windows
from sim.campaign.metastability import analyse, losses
from sim.errors import SurgeError
from sim.results import Results
from sim.results import clock as C
from sim.results.recovery import per_fault
from sim.scenario import Scenario


def scenario_of(r: Results) -> Scenario | None:
    """The scenario the run carries (scenario.yaml), validated again; None when it has none or it
    no longer validates (e.g. a file it names has moved)."""
    if r.scenario is None:
        return None
    from sim.scenario.load import parse_scenario

    try:
        return parse_scenario(dict(r.scenario), file="scenario.yaml")
    except SurgeError:
        return None


def analysis(r: Results) -> dict[str, Any]:
    """`sim.campaign.analyse` of a run with the scenario it carries (the same call `surge run`
    makes, so the report states the numbers the terminal printed)."""
    return analyse(r, scenario=scenario_of(r))


def outage_analysis(r: Results) -> dict[str, Any] | None:
    """The analysis when the run went down (success ratio below half), else None."""
    a = analysis(r)
    return a if a["onset_s"] is not None else None


def headline(reps: Sequence[Results], pooled: Results) -> list[str]:
    """The headline's sentences: what happened (and when, for how long), faults, what it cost, SLOs."""
    axis = TimeAxis.of(pooled)
    out = [_what_happened(reps, axis) if len(reps) > 1 else _one_run(reps[0], axis)]
    faults = fault_windows(pooled)
    if faults:
        out.append("Faults: " + "; ".join(f"F{k + 1} {w.label}, {axis.span(w.start_s, w.end_s)}"
                                          for k, w in enumerate(faults)) + ".")
    out.append(_cost(pooled))
    out.append(_slos(pooled.summary.get("slos") or []))
    return out


def _one_run(r: Results, axis: TimeAxis) -> str:
    a = analysis(r)
    s = r.summary
    if a["onset_s"] is None:
        text = (f"No outage: goodput stayed above {a['stuck_frac']:.0%} of offered commands throughout; "
                f"{tables.fmt('success_rate', s.get('success_rate'))} of {s.get('arrived', 0):,.0f} commands succeeded.")
        rec = [f for f in per_fault(r) if f["recovery_s"]]
        if rec:
            text += " After " + "; ".join(f"{f['fault_kind'].replace('_', ' ')} on {f['target']}: back to "
                                          f"{a['recover_frac']:.0%} of offered {C.duration(f['recovery_s'])} after it "
                                          f"ended" for f in rec) + "."
        return text
    return _outage_sentence(a, axis)


def _outage_sentence(a: dict[str, Any], axis: TimeAxis) -> str:
    trig = a["trigger_end_s"]
    why = {"faults": "the last fault ended", "demand": "demand fell back",
           "faults+demand": "demand fell back after the last fault", "given": "as given"}.get(a["trigger"], "")
    start = (f"Outage: goodput fell below {a['stuck_frac']:.0%} of offered commands at {axis.at(a['onset_s'])}; "
             f"down {C.duration(a['down_s'])} in all.")
    if trig is None:  # overload with no fault and no fall in demand: nothing to time a recovery from
        back = f"back at {a['recover_frac']:.0%} of offered at {axis.at(a['recovered_s'])}" \
            if a["recovered_s"] is not None and not a["stuck_at_end"] else "still down at the end of the run"
        return f"{start} No trigger (fault or fall in demand) was found; {back}."
    gone = f"the trigger ended at {axis.at(trig)} ({why})"
    if a["time_to_recover_s"] is None:
        return f"{start} Still down at the end of the run ({axis.at(axis.run_s)}); {gone}."
    return (f"{start} Time to recover {C.duration(a['time_to_recover_s'])}: {gone}, and it was back at "
            f"{a['recover_frac']:.0%} of offered at {axis.at(a['recovered_s'])}.")


def _what_happened(reps: Sequence[Results], axis: TimeAxis) -> str:
    """Replications: how many went down, and when and for how long (mean and range)."""
    found = [a for a in (analysis(r) for r in reps) if a["onset_s"] is not None]
    n = len(reps)
    if not found:
        return f"No outage in any of {n} replications (goodput stayed above half of offered commands)."
    onset = [a["onset_s"] for a in found]
    down = [a["down_s"] for a in found]
    rec = [a["time_to_recover_s"] for a in found if a["time_to_recover_s"] is not None]
    text = (f"Outage in {len(found)} of {n} replications: down from {axis.at(statistics.mean(onset))} "
            f"(mean; {axis.at(min(onset))} to {axis.at(max(onset))}), {C.duration(statistics.mean(down))} in all "
            f"(mean).")
    if rec:
        text += (f" Time to recover {C.duration(statistics.mean(rec))} (mean of {len(rec)}; "
                 f"{C.duration(min(rec))} to {C.duration(max(rec))}).")
    if len(rec) < len(found):
        text += f" {len(found) - len(rec)} still down at the end."
    return text


def _cost(r: Results) -> str:
    cost = losses(r, scenario_of(r))
    cmds = cost["commands"]
    share = cost["commands_failed"] / cmds if cmds else math.nan
    text = f"Cost: {_count(cost['commands_failed'])} of {_count(cmds)} commands failed ({share:.1%})"
    if cost["orders_wanted"]:
        text += f"; {_count(cost['orders_lost'])} of {_count(cost['orders_wanted'])} orders lost"
    if cost["full_scale"]:
        text += (f". At full scale (the run simulates {cost['cell']:.3g} of the population, ×{cost['full_scale']:,.0f}): "
                 f"{_count(cost['commands_failed_full_scale'])} commands failed")
        if cost["orders_wanted"]:
            text += f", {_count(cost['orders_lost_full_scale'])} orders lost"
    return text + "."


def _count(x: float | None) -> str:
    """A count for a sentence: 973, 34,081, 6.49 M, 1.2 B."""
    if x is None or not math.isfinite(x):
        return "–"
    for div, unit in ((1e9, " B"), (1e6, " M")):
        if abs(x) >= div:
            return f"{x / div:.3g}{unit}"
    return f"{x:,.0f}"


def _slos(verdicts: Sequence[dict[str, Any]]) -> str:
    if not verdicts:
        return "SLOs: the scenario defines none."
    failed = [v for v in verdicts if not v["pass"]]
    text = f"SLOs: {len(verdicts) - len(failed)} of {len(verdicts)} met"
    if failed:
        text += "; missed: " + ", ".join(
            f"{v['class']} {tables.label(v['slo'])} {tables.fmt(v['slo'], v.get('actual'))} "
            f"(target {'≥' if v['slo'] == 'success_rate' else '≤'} {tables.fmt(v['slo'], v['target'])})" for v in failed)
    return text + "."
