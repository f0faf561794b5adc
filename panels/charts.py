"""plotext charts of snapshot series, with vertical markers where something changed."""

from __future__ import annotations

from rich.text import Text
from textual.cache import LRUCache
from textual.visual import VisualType
from textual_plotext import PlotextPlot

from console.safe_text import cell
from console.snapshots import ChangeMarker, Series

_BUILT: LRUCache[tuple[object, ...], Text] = LRUCache(48)
"""Recently built charts by everything that decides their look, shared by all chart widgets:
a screen opened again, or a chart drawn again at a size it had before, is not re-plotted."""


class SeriesChart(PlotextPlot):
    """One time series over minutes before now; markers drawn as labelled vertical lines."""

    def __init__(self, title: str, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.chart_title = title
        self._shown: tuple[object, ...] | None = None

    def show(self, series: Series, markers: tuple[ChangeMarker, ...] = (), *,
             percent: bool = False, threshold: float | None = None) -> None:
        """Draw `series` (values ×100 when `percent`), an optional threshold line and markers."""
        shown = (series, markers, percent, threshold)
        if shown == self._shown:
            return  # plotting and rendering a chart costs tens of ms of the UI thread
        self._shown = shown
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        points = [p for p in series.points if p.value is not None]
        unit = "%" if percent else series.unit
        plt.title(cell(f"{self.chart_title} ({unit})", 60))
        if not points:
            plt.title(cell(f"{self.chart_title}: no traffic", 60))
            self.refresh()
            return
        end = series.points[-1].ts
        span_min = (end - series.points[0].ts).total_seconds() / 60
        seconds = unit == "ms" and max((p.value or 0.0) for p in points) >= 1000
        scale = 100.0 if percent else (0.001 if seconds else 1.0)
        if seconds:
            plt.title(cell(f"{self.chart_title} (s)", 60))
        xs = [-(end - p.ts).total_seconds() / 60 for p in points]
        ys = [(p.value or 0.0) * scale for p in points]
        plt.plot(xs, ys, marker="braille")
        if threshold is not None:
            plt.hline(threshold * scale)
        for m in markers:
            x = -(end - m.ts).total_seconds() / 60
            if xs[0] <= x <= 0:
                plt.vline(x)
                plt.text(cell(m.label, 20), x=x, y=max(ys))
        ticks = [-span_min, -span_min / 2, 0.0]
        plt.xticks(ticks, [_ago_label(-t) for t in ticks])
        self.refresh()


    def render(self) -> VisualType:
        # plotext builds the whole figure as ANSI text and Rich parses it back: ~5-10 ms of
        # the UI thread per chart, on every repaint of a new or resized widget.
        key = (type(self), self.chart_title, self._shown, self.size.width, self.size.height,
               self.app.theme)
        built = _BUILT.get(key)
        if built is None:
            rendered = super().render()
            if not isinstance(rendered, Text):
                return rendered
            built = _BUILT[key] = rendered
        return built


def _ago_label(minutes: float) -> str:
    """-6h, -3h, now."""
    if minutes <= 0:
        return "now"
    if minutes >= 120:
        return f"-{minutes / 60:.0f}h"
    return f"-{minutes:.0f}m"
