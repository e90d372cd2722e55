"""Simulation against measurement: the differences a calibration looks at.

Per class and interval: e2e p50 and p99 (and TTFT p99 where both have it) and goodput, simulated
and measured, with the relative difference (measured vs simulated); per fault: recovery time
in each. Written as differences.json (data) and differences.md (tables) in the run folder.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from loadtest.recovery import interval_quantile
from sim.results import Results
from sim.results import clock as C
from sim.results import names as N


def _rel(m: float, s: float) -> float:
    return (m - s) / s if s and math.isfinite(s) and math.isfinite(m) else math.nan


def differences(sim: Results, meas: Results) -> dict[str, Any]:
    """Per-interval and whole-run differences (measured − simulated, relative to simulated)."""
    n = min(int(sim.meta["n_intervals"]), int(meas.meta["n_intervals"]))
    dt = float(meas.meta["interval_s"])
    classes: dict[str, Any] = {}
    for c in meas.meta["classes"]:
        rows = []
        metrics: tuple[N.HistMetric, ...] = ("e2e", "ttft")
        cols = {f"{m}_{name}": (interval_quantile(sim, N.hist(m, c), q)[:n], interval_quantile(meas, N.hist(m, c), q)[:n])
                for m in metrics for name, q in (("p50", 0.5), ("p99", 0.99))}
        good_s = sim.series.get(N.of_class("good", c), np.zeros(n)) / dt
        good_m = meas.series.get(N.of_class("good", c), np.zeros(n)) / dt
        for i in range(n):
            row: dict[str, Any] = {"t_s": i * dt, "goodput_sim": float(good_s[i]), "goodput_meas": float(good_m[i])}
            for k, (a, b) in cols.items():
                row[f"{k}_sim"], row[f"{k}_meas"] = float(a[i]), float(b[i])
            rows.append(row)
        ks, km = sim.summary["classes"].get(c, {}), meas.summary["classes"].get(c, {})
        whole = {k: {"sim": _get(ks, k), "meas": _get(km, k), "rel": _rel(_get(km, k), _get(ks, k))}
                 for k in ("e2e.p50", "e2e.p99", "ttft.p99", "goodput_per_s", "success_rate")}
        classes[c] = {"intervals": rows, "whole_run": whole}
    rec = _recovery_pairs(sim.meta.get("recovery") or [], meas.meta.get("recovery") or [])
    return {"interval_s": dt, "classes": classes, "recovery": rec,
            "goodput_per_s": {"sim": sim.summary.get("goodput_per_s"), "meas": meas.summary.get("goodput_per_s")}}


def _get(kpi: dict[str, Any], path: str) -> float:
    v: Any = kpi
    for p in path.split("."):
        v = v.get(p) if isinstance(v, dict) else None
    return float(v) if isinstance(v, int | float) and v is not None else math.nan


def _recovery_pairs(sim: list[dict[str, Any]], meas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k in range(max(len(sim), len(meas))):
        s = sim[k] if k < len(sim) else {}
        m = meas[k] if k < len(meas) else {}
        out.append({"target": m.get("target") or s.get("target"), "fault_kind": m.get("fault_kind") or s.get("fault_kind"),
                    "end_s": m.get("end_s", s.get("end_s")), "recovery_sim_s": s.get("recovery_s"),
                    "recovered_sim": s.get("recovered"), "recovery_meas_s": m.get("recovery_s"),
                    "recovered_meas": m.get("recovered")})
    return out


def _f(x: Any, unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return f"{x:.3g}{unit}"


def _pct(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{100 * x:+.0f}%"


def markdown(d: dict[str, Any]) -> str:
    lines = ["# Simulation vs measurement", "",
             "Relative differences are (measured − simulated) / simulated. Latencies in seconds; goodput in "
             "commands/s within the class's e2e SLO.", "", "## Recovery after faults", "",
             "| fault | ends at | recovery (simulated) | recovery (measured) |", "|---|---:|---:|---:|"]
    for r in d["recovery"]:
        sim = _f(r["recovery_sim_s"], " s") if r["recovered_sim"] else "not recovered"
        meas = _f(r["recovery_meas_s"], " s") if r["recovered_meas"] else "not recovered"
        lines.append(f"| {r['fault_kind']} on {r['target']} | {_f(r['end_s'], ' s')} | {sim} | {meas} |")
    if not d["recovery"]:
        lines.append("| (no faults) | | | |")
    for c, body in d["classes"].items():
        lines += ["", f"## {c}", "", "| whole run | simulated | measured | difference |", "|---|---:|---:|---:|"]
        for k, v in body["whole_run"].items():
            lines.append(f"| {k} | {_f(v['sim'])} | {_f(v['meas'])} | {_pct(v['rel'])} |")
        lines += ["", "| time since start | e2e p50 sim | e2e p50 meas | e2e p99 sim | e2e p99 meas | Δp99 | goodput sim | "
                  "goodput meas |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in body["intervals"]:
            lines.append(f"| {C.duration(r['t_s'])} | {_f(r['e2e_p50_sim'])} | {_f(r['e2e_p50_meas'])} | {_f(r['e2e_p99_sim'])} | "
                         f"{_f(r['e2e_p99_meas'])} | {_pct(_rel(r['e2e_p99_meas'], r['e2e_p99_sim']))} | "
                         f"{_f(r['goodput_sim'])} | {_f(r['goodput_meas'])} |")
    return "\n".join(lines) + "\n"
