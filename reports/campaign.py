"""Figures for the campaign tools: the vulnerability heatmap and the mitigation comparison.

Both read what `sim.campaign` wrote (vulnerability.json, mitigations.json) and never simulate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

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


def outage_figure(run_dir: str | Path, analysis: dict[str, Any], out: str | Path | None = None) -> Path:
    """The report's outage figure (`reports.figures.outage_chart`) for one run folder and its
    analysis, as a PNG (default RUN_DIR/outage.png), on the run's own time axis."""
    from reports.figures import outage_chart
    from reports.plot import png
    from sim.results import Results

    r = Results.read(run_dir)
    chart = outage_chart([(Path(run_dir).name, r)], analysis)
    path = Path(out) if out else Path(run_dir) / "outage.png"
    if chart is not None:
        path.write_bytes(png(chart))
    return path
