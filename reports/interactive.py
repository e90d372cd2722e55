"""Drawing a Chart as an interactive plotly figure, for the HTML report's long timelines.

Why: a PNG of a 13-hour or 6-day run gives each interval a pixel or less, so a one-minute
trigger, the minutes around an onset or a burst of re-logins can only be read by zooming. The
headline figures of such runs (`Chart.zoom`, at least `ZOOM_MIN_INTERVALS` intervals) are drawn
here too: drag to zoom into a span (all panels follow), double-click to reset, hover for every
line's value at one instant. The report stays one self-contained file: plotly's JavaScript is
embedded once (`script`), never fetched. Short runs, and report.md, keep the PNGs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reports.chart import Chart, Panel

ZOOM_MIN_INTERVALS = 240  # below this a PNG shows each interval at ~4 px or more: no need to zoom
_BASE = np.datetime64("2000-01-01T00:00:00")  # day 1 of the clock axis (only times are shown)
_DASH = {"solid": "solid", "dash": "dash", "dot": "dot", "dashdot": "dashdot"}


def worth_it(chart: Chart) -> bool:
    """Whether this chart gets an interactive version: a zoom figure of a long run."""
    return chart.zoom and chart.ncols == 1 and chart.axis.run_s / chart.axis.interval_s >= ZOOM_MIN_INTERVALS


def script() -> str:
    """plotly's JavaScript, inline (put once in the page, before the figures)."""
    from plotly.offline import get_plotlyjs

    return f'<script type="text/javascript">{get_plotlyjs()}</script>'


def div(chart: Chart) -> str:
    """The chart as an HTML <div> (needs `script()` once on the page)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n = len(chart.panels)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.35 / max(n, 1) if n > 1 else 0,
                        subplot_titles=[p.title for p in chart.panels])
    for row, p in enumerate(chart.panels, start=1):
        _panel(fig, go, chart, p, row)
    _bands_and_marks(fig, go, chart)
    _layout(fig, chart, n)
    return fig.to_html(include_plotlyjs=False, full_html=False, config={"displaylogo": False, "responsive": True})


def _x(chart: Chart, axis_values: np.ndarray | float) -> Any:
    """Axis values as plotly x: datetimes on a clock axis (so zooming adapts the ticks), else numbers."""
    v = np.asarray(axis_values, dtype=float)
    if chart.axis.start_hour is None:
        return v
    ms = np.round(v * chart.axis.unit_s * 1000).astype("int64")
    return (_BASE + ms.astype("timedelta64[ms]")).astype(str)


def _panel(fig: Any, go: Any, chart: Chart, p: Panel, row: int) -> None:
    for ln in p.lines:
        fig.add_trace(go.Scatter(
            x=_x(chart, chart.axis.x(ln.t_s)), y=np.asarray(ln.y, dtype=float), name=ln.label, mode="lines",
            line={"color": ln.colour, "width": ln.width, "dash": _DASH[ln.dash]},
            stackgroup="stack" if p.stacked else None, legendgroup=f"panel{row}",
            legendgrouptitle_text=p.title if ln is p.lines[0] else None), row=row, col=1)
    for t in p.targets:
        fig.add_hline(y=t.y, line={"color": t.colour, "dash": "dash", "width": 1.2}, annotation_text=t.text,
                      annotation_position="top left", row=row, col=1)
    fig.update_yaxes(title_text=p.ylabel, row=row, col=1)
    lo, hi = p.ylim
    if lo is not None and hi is not None:
        fig.update_yaxes(range=[lo, hi], row=row, col=1)
    elif lo == 0:
        fig.update_yaxes(rangemode="tozero", row=row, col=1)


def _bands_and_marks(fig: Any, go: Any, chart: Chart) -> None:
    for b in chart.bands:
        x0, x1 = chart.band_extent(b)
        narrow = (chart.axis.x(b.end_s) - chart.axis.x(b.start_s)) < (x1 - x0) * 0.999
        fig.add_vrect(x0=_x(chart, x0).tolist(), x1=_x(chart, x1).tolist(), fillcolor=b.colour,
                      opacity=0.3 if narrow else 0.12, line_width=0, layer="below", row="all", col=1)
        if b.tag:
            fig.add_annotation(x=_x(chart, (x0 + x1) / 2).tolist(), y=1.0, xref="x", yref="y domain", text=b.tag,
                               showarrow=False, yanchor="top", font={"color": b.colour, "size": 11},
                               bgcolor="white", bordercolor=b.colour, hovertext=chart.band_legend(b), row=1, col=1)
        _legend_only(fig, go, chart.band_legend(b), {"mode": "markers", "marker": {
            "symbol": "square", "size": 11, "color": b.colour, "opacity": 0.5}})
    for m in chart.marks:
        fig.add_vline(x=_x(chart, chart.axis.x(m.t_s)).tolist(), line={"color": m.colour, "dash": "dash", "width": 1.2})
        _legend_only(fig, go, f"{m.label} {chart.axis.at(m.t_s)}", {"mode": "lines", "line": {
            "color": m.colour, "dash": "dash"}})


def _legend_only(fig: Any, go: Any, name: str, style: dict[str, Any]) -> None:
    """An entry in the legend for something that is not a trace (a band, a mark)."""
    fig.add_trace(go.Scatter(x=[None], y=[None], name=name, hoverinfo="skip", legendgroup="marks",
                             legendgrouptitle_text="faults and events", **style), row=1, col=1)


def _layout(fig: Any, chart: Chart, n: int) -> None:
    a = chart.axis
    xaxis: dict[str, Any] = {"title_text": a.label, "showticklabels": True}
    if a.start_hour is not None:
        base = "day %-d %H:%M" if a.run_s > 86400 else "%H:%M"
        xaxis.update(type="date", hoverformat=base + (":%S" if a.interval_s < 60 else ""), tickformatstops=[
            {"dtickrange": [None, 60000], "value": "%H:%M:%S"}, {"dtickrange": [60000, None], "value": base}])
    else:
        xaxis.update(hoverformat=".4g")
        xaxis["title_text"] = a.label
    fig.update_xaxes(**{k: v for k, v in xaxis.items() if k != "title_text"})
    fig.update_xaxes(title_text=a.label, row=n, col=1)
    fig.update_layout(
        title={"text": f"<b>{chart.title}</b>", "x": 0.5, "font": {"size": 16}}, height=130 + 210 * n,
        hovermode="x unified", template="plotly_white", margin={"l": 70, "r": 20, "t": 80, "b": 50},
        legend={"groupclick": "toggleitem", "font": {"size": 11}, "tracegroupgap": 12},
        dragmode="zoom")
    fig.update_annotations(font_size=12, selector={"xref": "paper"})
