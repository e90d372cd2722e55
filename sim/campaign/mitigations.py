"""Mitigations compared on one outage scenario: the base, then the base with each overlay, all
with the same seeds (common random numbers), judged on the same KPIs:

- goodput: good completions (within the class e2e SLO) per second, and as a fraction of offered;
- orders lost: commands of order-placing classes that arrived and did not place their order, in
  the cell and scaled to the whole app (/ population.scale);
- success rate: succeeded / ended commands;
- time down: how long the success ratio was below `stuck_frac` (`analyse`);
- time to recover: from the trigger's end to recovery (`analyse`); None = still down at the end;
- for a launch scenario (`population.launch`) also failed login attempts and new users lost
  (gave up signing up), scaled to the whole app.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sim.campaign.metastability import analyse, losses
from sim.campaign.overlay import load_overlay, load_with_overlay
from sim.des import simulate
from sim.parallel import run_tasks
from sim.results import clock as C
from sim.results import names as N

BASELINE = "none"


def _one(args: tuple[str, str | None, tuple[str, ...], int]) -> dict[str, Any]:
    base, overlay, sets, seed = args
    sc = load_with_overlay(base, overlay, list(sets), seed=seed)
    r = simulate(sc, seed=seed)
    a = analyse(r, scenario=sc)
    s = r.summary
    cost = losses(r, sc)
    scale = cost["cell"]
    launch = sc.population is not None and sc.population.launch is not None
    return {
        "launch": launch,
        "logins_failed_full_scale": float(r.series[N.LOGIN_FAILED].sum()) / scale,
        "auth_wait_max_s": _worst_wait(r, "auth"),
        "users_lost_full_scale": float(r.series[N.USERS_LOST].sum()) / scale if N.USERS_LOST in r.series else 0.0,
        "mitigation": Path(overlay).stem if overlay else BASELINE,
        "description": load_overlay(overlay).description if overlay else "no mitigation",
        "seed": seed,
        "goodput_per_s": s["goodput_per_s"],
        "goodput_fraction": a["goodput_fraction"],
        "orders": s["orders"],
        "orders_lost": cost["orders_lost"],
        "orders_lost_full_scale": cost["orders_lost"] / cost["cell"],
        "success_rate": s["success_rate"],
        "attempts_per_command": a["attempts_per_command"],
        "work_per_good": a["work_per_good"],
        "time_to_recover_s": a["time_to_recover_s"],
        "stuck_at_end": a["stuck_at_end"],
        "metastable": a["metastable"],
        "down_s": a["down_s"],
        "down_after_trigger_s": a["down_after_trigger_s"],
    }


def _worst_wait(r, service: str) -> float:  # type: ignore[no-untyped-def]
    """The longest mean queue wait of any interval at a service, seconds (0 without one)."""
    wait, granted = r.series.get(N.of_service("wait_s", service)), r.series.get(N.of_service("granted", service))
    if wait is None or granted is None or not granted.any():
        return 0.0
    return float(np.max(np.where(granted > 0, wait / np.maximum(granted, 1), 0.0)))


def compare_mitigations(base: str | Path, overlays: Sequence[str | Path], overrides: Sequence[str] = (),
                        replications: int = 1, jobs: int = 2,
                        progress: Callable[[float], None] | None = None) -> list[dict[str, Any]]:
    """One row per variant (the base first), KPIs averaged over replications (seeds run.seed + r).
    `time_to_recover_s` is the mean over replications that recovered (None if none did)."""
    seed0 = load_with_overlay(base, None, list(overrides)).run.seed
    variants: list[str | None] = [None, *[str(o) for o in overlays]]
    for o in overlays:
        load_overlay(o)  # fail early, in this process, on a bad overlay
    tasks = [(str(base), v, tuple(overrides), seed0 + r) for v in variants for r in range(replications)]
    rows = run_tasks(_one, tasks, jobs, progress)
    return [_mean(rows[i * replications:(i + 1) * replications]) for i in range(len(variants))]


def _mean(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(rows[0])
    out["replications"] = len(rows)
    for k, v in rows[0].items():
        if isinstance(v, float) and k != "time_to_recover_s":
            out[k] = sum(r[k] for r in rows) / len(rows)
    rec = [r["time_to_recover_s"] for r in rows if r["time_to_recover_s"] is not None]
    out["time_to_recover_s"] = sum(rec) / len(rec) if rec else None
    out["stuck_fraction"] = sum(r["stuck_at_end"] for r in rows) / len(rows)
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table, one row per mitigation."""

    def ttr(x: float | None) -> str:
        return "never (stuck)" if x is None else C.duration(x)

    launch = any(r.get("launch") for r in rows)
    head = ("| mitigation | goodput /s | goodput % of offered | success rate | orders lost (cell) | "
            "orders lost (full scale) | attempts/command | time down | time to recover |")
    head += " failed logins (full scale) | users lost (full scale) | worst sign-up wait |" if launch else ""
    lines = [head, "|" + "---|" * (12 if launch else 9)]
    for r in rows:
        line = (f"| {r['mitigation']} | {r['goodput_per_s']:.2f} | {r['goodput_fraction']:.1%} | "
                f"{r['success_rate']:.1%} | {r['orders_lost']:,.0f} | {_big(r['orders_lost_full_scale'])} | "
                f"{r['attempts_per_command']:.2f} | {C.duration(r['down_s'])} | {ttr(r['time_to_recover_s'])} |")
        if launch:
            line += (f" {_big(r['logins_failed_full_scale'])} | {_big(r['users_lost_full_scale'])} | "
                     f"{r['auth_wait_max_s']:.0f} s |")
        lines.append(line)
    return "\n".join(lines)


def _big(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x / 1e6:.2f} M" if x >= 1e5 else f"{x:,.0f}"
