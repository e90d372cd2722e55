"""What a figure shows, apart from how it is drawn: panels of lines on the run's one time axis,
fault bands and event marks. `reports.plot` draws a Chart as a PNG (matplotlib), and
`reports.interactive` as a zoomable plotly figure; both follow the same rules:

- time is on one axis (`TimeAxis`): clock time when the run is on a clock, else time since start;
- a panel whose every line is zero or missing is left out (`Chart.shown`);
- a fault band is drawn at least `MIN_BAND_FRACTION` of the axis wide, however short the fault,
  and tagged F1, F2, ... on the top panel with its clock span in the legend.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sim.results import Results
from sim.results import clock as C

MIN_BAND_FRACTION = 0.006  # about 6 px of a 1,000 px plot: a one-minute fault on a 13-hour axis shows
FAULT_COLOUR = "#d62728"
WARMUP_COLOUR = "#b0b0b0"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's tab10, so PNG and interactive figures use the same colours
COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey", "olive", "cyan")
DASHES = ("solid", "dash", "dot", "dashdot")


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class TimeAxis:
    """The x axis of every figure of a run: clock time from `start_hour` (hours), or elapsed time
    in seconds, minutes or hours by the run's length."""

    start_hour: float | None
    run_s: float
    interval_s: float

    @classmethod
    def of(cls, r: Results) -> TimeAxis:
        n, dt = int(r.meta["n_intervals"]), float(r.meta["interval_s"])
        return cls(C.start_hour(r.meta, r.scenario), n * dt, dt)

    @property
    def unit_s(self) -> float:
        """Seconds per axis unit: s up to 15 min, min up to 4 h, h beyond."""
        return 1.0 if self.run_s <= 900 else 60.0 if self.run_s <= 4 * 3600 else 3600.0

    @property
    def unit(self) -> str:
        return {1.0: "s", 60.0: "min", 3600.0: "h"}[self.unit_s]

    @property
    def offset_s(self) -> float:
        """Seconds from the axis origin to t = 0: midnight before the start on a clock, else 0."""
        return self.start_hour * 3600.0 if self.start_hour is not None else 0.0

    @property
    def label(self) -> str:
        return "clock time" if self.start_hour is not None else f"time since start ({self.unit})"

    def x(self, t_s: np.ndarray | float) -> np.ndarray:
        """Axis values of times in seconds since the start."""
        return (np.asarray(t_s, dtype=float) + self.offset_s) / self.unit_s

    def tick(self, x: float) -> str:
        """The text of an axis value: a clock time, or a number of units."""
        if self.start_hour is None:
            return f"{x:g}"
        return C.clock(x * self.unit_s - self.offset_s, self.start_hour, self.run_s, seconds=self.unit_s == 1.0)

    def at(self, t_s: float | None) -> str:
        return C.at(t_s, self.start_hour, self.run_s, self.interval_s)

    def span(self, a_s: float, b_s: float) -> str:
        return C.span(a_s, b_s, self.start_hour, self.run_s, self.interval_s)


@dataclass(frozen=True)
class Line:
    """One line: values `y` drawn at `t_s` (seconds since the start)."""

    label: str
    t_s: np.ndarray
    y: np.ndarray
    colour: str
    dash: str = "solid"  # solid, dash, dot, dashdot
    width: float = 1.4

    def has_data(self) -> bool:
        y = np.asarray(self.y, dtype=float)
        finite = y[np.isfinite(y)]
        return bool(finite.size and np.any(finite != 0))


@dataclass(frozen=True)
class Target:
    """A horizontal target (an SLO) labelled on the line itself."""

    y: float
    text: str
    colour: str = "black"


@dataclass
class Panel:
    """One plot of a figure. `stacked`: the lines are stacked areas (parts of a whole)."""

    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    stacked: bool = False
    ylim: tuple[float | None, float | None] = (0.0, None)

    def has_data(self) -> bool:
        return any(line.has_data() for line in self.lines)


@dataclass(frozen=True)
class Band:
    """A span of the run to shade: a fault (tagged F1, F2, ...) or the warm-up."""

    start_s: float
    end_s: float
    label: str
    tag: str = ""
    colour: str = FAULT_COLOUR


@dataclass(frozen=True)
class Mark:
    """An instant marked across every panel (onset, trigger gone, recovered)."""

    t_s: float
    label: str
    colour: str


@dataclass
class Chart:
    """A figure: a title, panels sharing the time axis (`ncols` side by side), bands, marks.
    `zoom`: worth an interactive version when the run is long (see reports.interactive)."""

    key: str
    title: str
    axis: TimeAxis
    panels: list[Panel]
    ncols: int = 1
    bands: list[Band] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    zoom: bool = False
    panel_height: float = 2.6  # inches in the PNG
    matrix: bool = False  # panels are a rows x columns matrix (metric x class): titles name columns, y labels rows

    def shown(self) -> Chart | None:
        """This chart without its empty panels; None when nothing is left. A matrix keeps its
        alignment: a column or row is dropped only when wholly empty (a lone empty cell is left
        blank by the renderer); other panels simply close up."""
        if not self.matrix:
            kept = [p for p in self.panels if p.has_data()]
            return replace(self, panels=kept, ncols=min(self.ncols, len(kept))) if kept else None
        rows = [self.panels[i:i + self.ncols] for i in range(0, len(self.panels), self.ncols)]
        cols = [c for c in range(self.ncols) if any(r[c].has_data() for r in rows if c < len(r))]
        rows = [[r[c] for c in cols if c < len(r)] for r in rows if any(p.has_data() for p in r)]
        if not rows or not cols:
            return None
        return replace(self, panels=[p for r in rows for p in r], ncols=len(cols))

    def band_extent(self, b: Band) -> tuple[float, float]:
        """Axis values of a band, widened about its middle to the minimum visible width."""
        x0, x1 = float(self.axis.x(b.start_s)), float(self.axis.x(b.end_s))
        least = MIN_BAND_FRACTION * self.axis.run_s / self.axis.unit_s
        if x1 - x0 < least:
            mid = (x0 + x1) / 2
            x0, x1 = mid - least / 2, mid + least / 2
        return x0, x1

    def band_legend(self, b: Band) -> str:
        where = self.axis.span(b.start_s, b.end_s)
        return f"{b.tag} {where}: {b.label}".strip() if b.tag else f"{b.label} ({where})"
