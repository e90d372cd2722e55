"""Figures for the campaign tools: the vulnerability heatmap and the mitigation comparison.

Both read what `sim.campaign` wrote (vulnerability.json, mitigations.json) and never simulate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def vulnerability_heatmap(vuln_json: str | Path, out: str | Path | None = None) -> Path:
    """One panel per load: trigger magnitude (rows) x duration (columns), colour = fraction stuck."""
    src = Path(vuln_json)
    d: dict[str, Any] = json.loads(src.read_text())
    stuck = np.asarray(d["stuck_fraction"], dtype=float)
    loads, mags, durs = d["loads"], d["magnitudes"], d["durations_s"]
    fig, axes = plt.subplots(1, len(loads), figsize=(2.2 + 1.0 * len(durs) * len(loads), 0.9 + 0.45 * len(mags)),
                             squeeze=False, sharey=True)
    im = None
    for i, (ax, load) in enumerate(zip(axes[0], loads, strict=True)):
        im = ax.imshow(stuck[i], origin="lower", cmap="Reds", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(durs)), [f"{x:g}" for x in durs])
        ax.set_yticks(range(len(mags)), [f"{m:g}" for m in mags])
        ax.set_xlabel("trigger duration (s)")
        ax.set_title(f"load x{load:g}")
        for j in range(len(mags)):
            for k in range(len(durs)):
                v = stuck[i, j, k]
                ax.text(k, j, f"{v:.2f}".rstrip("0").rstrip(".") if v not in (0, 1) else f"{v:.0f}",
                        ha="center", va="center", fontsize=7, color="white" if v > 0.6 else "black")
    axes[0][0].set_ylabel("trigger magnitude (capacity lost)")
    fig.suptitle(f"{d['scenario']}: fraction of {d['replications']} replications locked in", y=1.06)
    if im is not None:
        fig.colorbar(im, ax=axes[0].tolist(), fraction=0.03, pad=0.02)
    path = Path(out) if out else src.with_name("vulnerability.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def mitigation_figure(mitigations_json: str | Path, out: str | Path | None = None) -> Path:
    """Four bar charts, one bar per mitigation: goodput, orders lost, success rate, time to recover."""
    src = Path(mitigations_json)
    rows: list[dict[str, Any]] = json.loads(src.read_text())
    names = [r["mitigation"] for r in rows]
    y = np.arange(len(rows))
    horizon = max((r["time_to_recover_s"] or 0) for r in rows) or 1.0
    panels = [
        ("goodput (% of offered)", [100 * r["goodput_fraction"] for r in rows], "{:.0f}%"),
        ("orders lost (full scale, M)", [r["orders_lost_full_scale"] / 1e6 for r in rows], "{:.2f}"),
        ("success rate (%)", [100 * r["success_rate"] for r in rows], "{:.0f}%"),
        ("time to recover (min)", [(r["time_to_recover_s"] if r["time_to_recover_s"] is not None else horizon) / 60
                                   for r in rows], "{:.0f}"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(14, 0.6 + 0.38 * len(rows)), sharey=True)
    for ax, (title, vals, fmt) in zip(axes, panels, strict=True):
        colours = ["#999999" if n == "none" else "#3a7dc9" for n in names]
        ax.barh(y, vals, color=colours)
        for yi, v in zip(y, vals, strict=True):
            ax.text(v, yi, " " + fmt.format(v), va="center", fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.margins(x=0.25)
    for r, yi in zip(rows, y, strict=True):
        if r["time_to_recover_s"] is None:
            axes[3].text(0, yi, " never", va="center", fontsize=7, color="darkred")
    axes[0].set_yticks(y, names)
    axes[0].invert_yaxis()
    fig.suptitle("mitigations on the outage scenario (grey: no mitigation)", fontsize=10)
    path = Path(out) if out else src.with_name("mitigations.png")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def outage_figure(run_dir: str | Path, analysis: dict[str, Any], out: str | Path | None = None,
                  start_hour: float | None = None) -> Path:
    """Trigger, sustaining effect and recovery of one run, on one time axis (clock hours when
    `start_hour` is given, else minutes): offered vs good vs attempts; the gateway queue and LLM
    busy time; logins. Faults are shaded; onset, trigger end and recovery are marked."""
    from sim.results import Results

    r = Results.read(run_dir)
    dt = float(r.meta["interval_s"])
    t = (r.t_s + dt) / 3600 + start_hour if start_hour is not None else (r.t_s + dt) / 60
    unit = 3600 if start_hour is not None else 60
    off = 0.0 if start_hour is None else start_hour

    def x(sec: float) -> float:
        return sec / unit + off

    cls = r.meta["classes"]

    def total(prefix: str) -> np.ndarray:
        return sum((r.series.get(f"{prefix}:{c}", np.zeros(len(t))) for c in cls), np.zeros(len(t))) / dt

    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True, height_ratios=[3, 2, 1.4])
    a0, a1, a2 = axes
    a0.plot(t, total("attempts"), color="#d95f02", lw=1, label="attempts sent (retries included)")
    a0.plot(t, total("arrived"), color="#555555", lw=1.2, label="commands offered")
    a0.plot(t, total("good"), color="#1b9e77", lw=1.6, label="good completions (goodput)")
    a0.set_ylabel("per second")
    a0.legend(loc="upper right", fontsize=8)
    q = r.series.get("queue:gateway")
    if q is not None:
        a1.plot(t, q, color="#7570b3", lw=1.2, label="gateway queue (commands)")
        a1.set_ylabel("queued")
    busy = r.series.get("utilisation:llm")
    if busy is not None:
        b = a1.twinx()
        b.plot(t, busy, color="#e7298a", lw=0.8, alpha=0.6, label="LLM batch fill (fraction of max_num_seqs)")
        b.set_ylim(0, 1.05)
        b.set_ylabel("LLM batch fill")
        b.legend(loc="lower right", fontsize=8)
    a1.legend(loc="upper right", fontsize=8)
    a2.plot(t, r.series.get("logins", np.zeros(len(t))) / dt, color="#66a61e", lw=1, label="logins")
    a2.plot(t, r.series.get("login_failed", np.zeros(len(t))) / dt, color="#a6761d", lw=1, label="failed logins")
    a2.set_ylabel("per second")
    a2.legend(loc="upper right", fontsize=8)
    for e in r.events:
        if e.get("kind") == "fault_start":
            for ax in axes:
                ax.axvspan(x(e["t_s"]), x(e["t_s"] + max(e.get("duration_s", 0), dt)), color="red", alpha=0.15)
    marks = [("onset", analysis.get("onset_s"), "black"), ("trigger gone", analysis.get("trigger_end_s"), "red"),
             ("recovered", analysis.get("recovered_s"), "green")]
    for label, sec, colour in marks:
        if sec is not None:
            for ax in axes:
                ax.axvline(x(sec), color=colour, ls="--", lw=1)
            a0.annotate(label, (x(sec), a0.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8, color=colour)
    a2.set_xlabel("clock time (h)" if start_hour is not None else "minutes")
    if start_hour is not None:
        a2.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v % 24:g}"))
    verdict = ("stuck at the end" if analysis.get("stuck_at_end") else
               f"down {analysis.get('down_after_trigger_s', 0) / 60:,.0f} min after the trigger was gone"
               if analysis.get("metastable") else "recovered")
    fig.suptitle(f"{r.meta.get('scenario', '')}: {verdict}; "
                 f"{analysis.get('attempts_per_command_degraded', float('nan')):.2f} attempts per command while degraded",
                 fontsize=10)
    path = Path(out) if out else Path(run_dir) / "outage.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
