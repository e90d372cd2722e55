"""Plain-text answers for the terminal (strings; the CLI prints them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sim.planning.verdict import SURVIVES


def _num(x: Any, fmt: str = "{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return fmt.format(x)


def _values(v: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={x}" for k, x in v.items()) if v else "(the scenario as it is)"


def format_plan(plan: dict[str, Any]) -> str:
    """One plan (Plan.to_json()) in a few lines."""
    head = f"plan {plan['mode']}: constraints {', '.join(plan['constraints'])}"
    if plan["answer"] is None:
        tried = ", ".join(_values(p["values"]) + f" {p['state']}" for p in plan["probes"])
        return f"{head}\n  no configuration in the range meets them (tried: {tried})"
    j = plan["judgement"]
    lines = [head, f"  answer: {_values(plan['answer'])}  ({j['n']} replications, every constraint "
                   f"met with the stated confidence)"]
    cost = plan["cost_per_hour"]
    if cost is not None:
        lines.append(f"  cost: {cost:,.2f} {plan['currency']}/hour as provisioned"
                     + (f"; {plan['run_cost']['cost_per_1k_good']:,.3f} per 1,000 good commands"
                        if plan["run_cost"].get("cost_per_1k_good") is not None else ""))
    else:
        lines.append("  cost: the scenario has no cost block")
    closest = min((c for c in j["checks"] if c["margin"] is not None and c["slo"] != SURVIVES),
                  key=lambda c: c["margin"], default=None)
    if closest:
        lines.append(f"  closest SLO at the answer: {closest['name']} = {_num(closest['mean'])} "
                     f"(target {_num(closest['target'])}, {closest['margin']:+.1%} room)")
    m = plan.get("margin")
    if m:
        lines.append(_margin_line(m))
        b = m["bottleneck"]
        if b:
            grew = f", its queue grew first at {b['queue_first_s']:,.0f} s" if b["queue_first_s"] is not None else ""
            others = "; ".join(f"{r['service']} {r['utilisation']:.0%}" for r in b["ranking"][1:4])
            lines.append(f"  bottleneck at load x{m['bottleneck_at_load']:.3g}: {b['service']} "
                         f"(utilisation {b['utilisation']:.0%}{grew}" + (f"; then {others})" if others else ")"))
    if len(plan["candidates"]) > 1:
        lines.append("  candidates: " + "; ".join(
            f"{_values(c['values'])} {_num(c['cost_per_hour'], '{:,.2f}')}/h" for c in plan["candidates"]))
    return "\n".join(lines)


def _margin_line(m: dict[str, Any]) -> str:
    if m["load_ok"] is None:
        return f"  margin: none: it already misses {m['binding']} at its own load"
    if m["load_breaks"] is None:
        return f"  margin: every constraint still met at x{m['load_ok']:.3g} the load (the search limit)"
    return (f"  margin: {m['margin']:+.0%} load (met at x{m['load_ok']:.3g}, breaks at x{m['load_breaks']:.3g}, "
            f"to {m['tolerance']:.0%}); binding SLO: {m['binding']}")


def format_plans(plans: Sequence[dict[str, Any]]) -> str:
    """Every mode's plan, then one line on what the faults change."""
    out = [format_plan(p) for p in plans]
    if len(plans) == 2:
        a, b = (p["answer"] if p["answer"] is not None else {"answer": "none in the range"} for p in plans)
        out.append(f"faults do not change the answer: {_values(a)}" if a == b else
                   f"faults change the answer: {_values(a)} without them, {_values(b)} with them")
    return "\n".join(out)


def format_margin(m: dict[str, Any]) -> str:
    """The outage margin (sim.planning.margin.outage_margin) in a few lines."""
    what = {"load": "demand (arrivals.scale x)", "magnitude": f"faults.{m['fault']}.magnitude",
            "duration": f"faults.{m['fault']}.duration_s"}[m["along"]]
    rule = f"{m['criterion']} in at least half of {m['replications']} replications"
    if m["ok_up_to"] is None:
        return f"outage margin along {what}: locked in already at {m['locks_in_at']:g} ({rule})"
    if m["locks_in_at"] is None:
        return f"outage margin along {what}: no lock-in up to {m['ok_up_to']:g} ({rule})"
    return (f"outage margin along {what}: survives up to {m['ok_up_to']:g}, locks in at {m['locks_in_at']:g} "
            f"({_num(m['margin'], '{:+.0%}')} from {m['start']:g}; {rule})")


def format_sweep(sw: dict[str, Any]) -> str:
    """One line per grid point: values, SLO attainment, cost, the worst SLO."""
    lines = [f"sweep of {sw['scenario']}: {len(sw['points'])} points x {sw['replications']} replications "
             f"({sw['runs_computed']} runs computed, {sw['runs_reused']} reused from the cache)"]
    for p in sw["points"]:
        worst = min(p["slos"].values(), key=lambda s: s["pass_fraction"], default=None)
        lines.append(f"  {_values(p['values'])}: SLOs met in {p['attainment']:.0%} of replications"
                     + (f", {p['cost_per_hour']:,.2f}/h" if p["cost_per_hour"] is not None else "")
                     + (f", worst {worst['class']}.{worst['slo']} mean {_num(worst['mean'])}" if worst else ""))
    return "\n".join(lines)
