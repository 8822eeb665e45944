"""Plot widgets with the app's defaults: plain axis numbers, grid, optional legend."""
from __future__ import annotations

import pyqtgraph as pg


def make_plot(title: str = "", left: str = "", bottom: str = "", log_y: bool = False, legend: bool = False
              ) -> pg.PlotWidget:
    w = pg.PlotWidget(title=title or None)
    if left:
        w.setLabel("left", left)
    if bottom:
        w.setLabel("bottom", bottom)
    for name in ("left", "bottom"):
        # "x0.001" axis prefixes hide a learning rate's real value; show plain numbers.
        w.getAxis(name).enableAutoSIPrefix(False)
    w.setLogMode(False, log_y)
    w.showGrid(x=True, y=True, alpha=0.2)
    # Long curves are decimated by gui.series.decimate before setData (see there for why not
    # pyqtgraph's clip-to-view + auto-downsampling).
    if legend:
        w.addLegend(offset=(-10, 10))
    return w
