"""Drawing helpers shared by every figure: the Agg backend, panels, shading, overlaid runs.

One rule for single reports and comparisons alike: with one run each quantity gets its own
colour; with several runs colour is the run and line style is the quantity, so a comparison
reads "blue = run A, orange = run B" across every panel.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are files: never open a window, never need a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports.timeseries import Window, fault_windows, time_axis, warmup_window  # noqa: E402
from sim.results import Results  # noqa: E402

Run = tuple[str, Results]  # (label, results)
STYLES = ("-", "--", ":", "-.")
DPI = 96
FAULT_COLOUR = "#d62728"

plt.rcParams.update({
    "axes.titlesize": 11, "axes.labelsize": 9.5, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5,
    "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
    "axes.spines.right": False,
})


def panels(n: int, title: str, ncols: int = 1, height: float = 2.6) -> tuple[Figure, list[Axes]]:
    """A figure with n panels sharing the time axis, titled `title`."""
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(11, 0.9 + height * nrows), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig, axes[:n]


def style(run_idx: int, item_idx: int, n_runs: int) -> dict[str, Any]:
    """Colour and line style of quantity `item_idx` of run `run_idx`."""
    if n_runs == 1:
        return {"color": f"C{item_idx % 10}", "linestyle": "-"}
    return {"color": f"C{run_idx % 10}", "linestyle": STYLES[item_idx % len(STYLES)]}


def line_label(item: str, run: str, n_runs: int) -> str:
    return item if n_runs == 1 else f"{item} — {run}"


def overlay(ax: Axes, runs: Sequence[Run], items: Sequence[tuple[str, Callable[[Results], Any]]],
            scale: float = 1.0, gauge: bool = False) -> int:
    """Plot each (name, f(results) -> per-interval array or None) for each run; returns lines drawn.

    Counts and averages are drawn at the middle of their interval; `gauge` values (sampled at the
    end of the interval: queues, capacity, KV use) at its end, so a drop never shows before its cause."""
    drawn = 0
    for ri, (label, r) in enumerate(runs):
        t, scale_t, _ = time_axis(r)
        if gauge:
            t = t + 0.5 * r.meta["interval_s"] / scale_t
        for ii, (name, f) in enumerate(items):
            y = f(r)
            if y is None:
                continue
            ax.plot(t, np.asarray(y) * scale, lw=1.4, label=line_label(name, label, len(runs)),
                    **style(ri, ii, len(runs)))
            drawn += 1
    return drawn


def shade(axes: Sequence[Axes], runs: Sequence[Run]) -> None:
    """Shade the warm-up (grey) and every distinct fault window (red) on each panel; the top panel's
    legend names them, with their times."""
    r = runs[0][1]
    _, scale, unit = time_axis(r)
    wins: list[Window] = []
    for _, run in runs:
        wins += [w for w in fault_windows(run) if w not in wins]
    warm = warmup_window(r)
    for k, ax in enumerate(axes):
        if warm:
            ax.axvspan(0, warm.end_s / scale, color="0.85", alpha=0.5, lw=0,
                       label=warm.label if k == 0 else None)
        for w in wins:
            span = f"{w.start_s / scale:.3g}–{w.end_s / scale:.3g} {unit}"
            ax.axvspan(w.start_s / scale, w.end_s / scale, color=FAULT_COLOUR, alpha=0.10, lw=0,
                       label=f"fault {span}: {w.label}" if k == 0 else None)


def finish(fig: Figure, axes: Sequence[Axes], runs: Sequence[Run], legend_cols: int = 1) -> Figure:
    """Shade windows, label the time axis on the bottom panels, add legends."""
    shade(axes, runs)
    _, _, unit = time_axis(runs[0][1])
    spec = axes[0].get_subplotspec() if axes else None
    ncols = spec.get_gridspec().ncols if spec is not None else 1
    for k, ax in enumerate(axes):
        if k >= len(axes) - ncols:
            ax.set_xlabel(f"time since start ({unit})")
            ax.tick_params(labelbottom=True)
        ax.set_ylim(bottom=0)
    if ncols == 1:
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), ncols=legend_cols, frameon=False)
    else:
        _grid_legends(fig, axes)
    return fig


def _grid_legends(fig: Figure, axes: Sequence[Axes]) -> None:
    """Side-by-side panels: a legend outside each would squeeze the plots. Lines that mean the same
    in every panel (p50/p90/p99, the shading) go in one legend under the figure; otherwise a panel
    with several lines gets a small legend of its own."""
    shading = {lab: h for h, lab in zip(*axes[0].get_legend_handles_labels(), strict=True)
               if lab.startswith(("fault", "warm-up"))}
    per_axis = [[(h, lab) for h, lab in zip(*ax.get_legend_handles_labels(), strict=True) if lab not in shading]
                for ax in axes]
    labels = [[lab for _, lab in pairs] for pairs in per_axis]
    common = all(lab == labels[0] for lab in labels) and labels[0]
    if not common:
        for ax, pairs in zip(axes, per_axis, strict=True):
            if len(pairs) > 1:
                ax.legend(*zip(*pairs, strict=True), loc="best", fontsize=7, framealpha=0.85)
    shared = {**(dict((lab, h) for h, lab in per_axis[0]) if common else {}), **shading}
    if shared:
        fig.legend(list(shared.values()), list(shared), loc="outside lower center", frameon=False,
                   ncols=min(len(shared), 6))


def target_line(ax: Axes, y: float, text: str, colour: str = "black") -> None:
    """A dashed horizontal target (an SLO) labelled on the line itself, so every panel can have its
    own target without its own legend."""
    ax.axhline(y, color=colour, lw=1.2, ls=(0, (6, 3)))
    ax.annotate(text, xy=(0.0, y), xycoords=("axes fraction", "data"), xytext=(4, 2),
                textcoords="offset points", fontsize=8, color=colour, va="bottom",
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})


def empty_note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
