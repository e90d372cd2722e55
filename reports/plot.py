"""Drawing a Chart as a PNG with matplotlib (the Agg backend: reports are files, never windows).

Layout rules that keep text from overlapping: panel titles are left-aligned; a grid names its
columns on the top row only and its rows in the first column's y labels; legends sit outside a
single-column figure, or below a grid; fault tags sit inside the top panels, event marks are
named in the legend, never written over the data.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.ticker as mticker  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from reports.chart import Chart, Panel  # noqa: E402

DPI = 96
_DASH = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-."}
_STEPS = {1.0: [1, 2, 2.5, 3, 5, 6, 10], 60.0: [1, 1.5, 2, 3, 5, 6, 10], 3600.0: [1, 1.2, 2, 2.4, 3, 6, 10]}

matplotlib.rcParams.update({
    "axes.titlesize": 10.5, "axes.labelsize": 9.5, "xtick.labelsize": 8.5, "ytick.labelsize": 8.5,
    "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
    "axes.spines.right": False,
})


def figure(chart: Chart) -> Figure:
    """The chart as a matplotlib Figure (every panel given is drawn: call `Chart.shown` first)."""
    n, ncols = len(chart.panels), min(chart.ncols, len(chart.panels))
    nrows = -(-n // ncols)
    fig = Figure(figsize=(11, 0.9 + chart.panel_height * nrows), dpi=DPI, layout="constrained")
    grid = fig.subplots(nrows, ncols, sharex=True, squeeze=False)
    axes = grid.ravel().tolist()
    for ax in axes[n:]:
        ax.set_visible(False)
    axes = axes[:n]
    fig.suptitle(chart.title, fontsize=12.5, fontweight="bold")
    for k, (ax, p) in enumerate(zip(axes, chart.panels, strict=True)):
        _panel(ax, chart, p, title=not chart.matrix or k < ncols, ylabel=not chart.matrix or k % ncols == 0)
        if not p.has_data():  # a blank cell of a matrix: nothing to show, keep the grid aligned
            ax.set_visible(False)
    _time_axis(chart, axes, ncols)
    _bands_and_marks(chart, axes, ncols)
    _legends(fig, axes, ncols, _shared_labels(chart))
    return fig


def png(chart: Chart) -> bytes:
    buf = io.BytesIO()
    figure(chart).savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _panel(ax: Axes, chart: Chart, p: Panel, title: bool, ylabel: bool) -> None:
    """One panel; in a grid the columns are named on the top row only and the rows in the first
    column's y label only, so no title runs into its neighbour."""
    if p.stacked and p.lines:
        ax.stackplot(chart.axis.x(p.lines[0].t_s), *[ln.y for ln in p.lines], labels=[ln.label for ln in p.lines],
                     colors=[ln.colour for ln in p.lines], alpha=0.85)
    else:
        for ln in p.lines:
            ax.plot(chart.axis.x(ln.t_s), ln.y, lw=ln.width, color=ln.colour, linestyle=_DASH[ln.dash],
                    label=ln.label)
    if p.targets and p.ylim[1] is None:  # room above the highest target for its label, inside the panel
        ax.set_ylim(top=max(ax.get_ylim()[1], 1.15 * max(t.y for t in p.targets)))
    ax.set_ylim(*p.ylim)
    lo, hi = ax.get_ylim()
    taken = [(x - 0.015, x + 0.015) for x in _tag_positions(chart)]
    for t in p.targets:
        ax.axhline(t.y, color=t.colour, lw=1.1, ls=(0, (6, 3)))
        width = _text_fraction(t.text, chart.ncols)
        x = next((c for c in (0.005, 0.985 - width, 0.5 - width / 2, 0.25, 0.6)
                  if not any(c < b and a < c + width for a, b in taken)), 0.005)
        taken.append((x, x + width))
        below = (hi - t.y) < 0.1 * (hi - lo)  # no room above the line inside the panel: write under it
        ax.annotate(t.text, xy=(x, t.y), xycoords=("axes fraction", "data"), xytext=(0, -2 if below else 2),
                    textcoords="offset points", fontsize=8, color=t.colour, va="top" if below else "bottom",
                    bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75})
    if p.title and title:
        ax.set_title(p.title, loc="left")
    if ylabel:
        ax.set_ylabel(p.ylabel)


def _tag_positions(chart: Chart) -> list[float]:
    """Where the fault tags sit, as fractions of the axis width."""
    span = chart.axis.run_s / chart.axis.unit_s
    lo = float(chart.axis.x(0.0))
    return [(sum(chart.band_extent(b)) / 2 - lo) / span for b in chart.bands if b.tag]


def _text_fraction(text: str, ncols: int) -> float:
    """About how much of a panel's width a label of 8 pt takes (an 11 in figure, ~65% of it plots
    when the legend is beside it); generous, so a label never runs past the edge."""
    return len(text) * 0.0085 * ncols


def _time_axis(chart: Chart, axes: list[Axes], ncols: int) -> None:
    a = chart.axis
    axes[0].set_xlim(float(a.x(0.0)), float(a.x(a.run_s)))
    for k, ax in enumerate(axes):
        ax.xaxis.set_major_locator(mticker.MaxNLocator(nbins=8 if ncols == 1 else 4, steps=_STEPS[a.unit_s]))
        ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: a.tick(v)))
        if k >= len(axes) - ncols:
            ax.set_xlabel(a.label)
            ax.tick_params(labelbottom=True)


def _bands_and_marks(chart: Chart, axes: list[Axes], ncols: int) -> None:
    for b in chart.bands:
        x0, x1 = chart.band_extent(b)
        narrow = (chart.axis.x(b.end_s) - chart.axis.x(b.start_s)) < (x1 - x0) * 0.999
        for k, ax in enumerate(axes):
            ax.axvspan(x0, x1, color=b.colour, alpha=0.32 if narrow else 0.12, lw=0,
                       label=chart.band_legend(b) if k == 0 else None)
            if b.tag and k < ncols:
                ax.text((x0 + x1) / 2, 0.98, b.tag, transform=ax.get_xaxis_transform(), ha="center", va="top",
                        fontsize=7.5, color=b.colour, fontweight="bold",
                        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": b.colour, "lw": 0.6, "alpha": 0.9})
    for m in chart.marks:
        for k, ax in enumerate(axes):
            ax.axvline(float(chart.axis.x(m.t_s)), color=m.colour, ls="--", lw=1.1,
                       label=f"{m.label} {chart.axis.at(m.t_s)}" if k == 0 else None)


def _shared_labels(chart: Chart) -> set[str]:
    """Legend entries that belong to the whole figure: bands and marks."""
    return {chart.band_legend(b) for b in chart.bands} | {f"{m.label} {chart.axis.at(m.t_s)}" for m in chart.marks}


def _legends(fig: Figure, axes: list[Axes], ncols: int, whole: set[str]) -> None:
    if ncols == 1:
        for ax in axes:
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        return
    # side by side: lines that mean the same in every panel (p50/p90/p99, the bands) go in one
    # legend under the figure; otherwise a panel with several lines gets a small legend of its own
    pairs = [list(zip(*ax.get_legend_handles_labels(), strict=True)) for ax in axes]
    shading = {lab: h for h, lab in pairs[0] if lab in whole}
    own = [[(h, lab) for h, lab in ps if lab not in shading] for ps in pairs]
    labels = [[lab for _, lab in ps] for ps in own]
    common = bool(labels[0]) and all(lab == labels[0] for lab in labels)
    if not common:
        for ax, ps in zip(axes, own, strict=True):
            if len(ps) > 1:
                ax.legend(*zip(*ps, strict=True), loc="best", fontsize=7, framealpha=0.85)
    shared = {**({lab: h for h, lab in own[0]} if common else {}), **shading}
    if shared:
        fig.legend(list(shared.values()), list(shared), loc="outside lower center", frameon=False,
                   ncols=min(len(shared), 4))
