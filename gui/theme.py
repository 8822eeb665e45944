"""Light and dark themes: the Qt palette and every plot's background and axes, switchable at run time."""
from __future__ import annotations

import sys

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

THEMES = ("system", "light", "dark")


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    scheme = getattr(hints, "colorScheme", None)
    return scheme is not None and scheme() == Qt.ColorScheme.Dark


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 30, 30), QColor(45, 45, 48), QColor(230, 230, 230)
    for role, colour in ((QPalette.Window, window), (QPalette.WindowText, text), (QPalette.Base, base),
                         (QPalette.AlternateBase, window), (QPalette.ToolTipBase, window),
                         (QPalette.ToolTipText, text), (QPalette.Text, text), (QPalette.Button, window),
                         (QPalette.ButtonText, text), (QPalette.Highlight, QColor(0, 114, 178)),
                         (QPalette.HighlightedText, QColor(255, 255, 255)), (QPalette.Link, QColor(86, 180, 233))):
        p.setColor(role, colour)
    p.setColor(QPalette.Disabled, QPalette.Text, QColor(128, 128, 128))
    p.setColor(QPalette.Disabled, QPalette.ButtonText, QColor(128, 128, 128))
    return p


def resolve(theme: str) -> bool:
    """True when the theme means dark."""
    return theme == "dark" or (theme == "system" and system_is_dark())


def apply_theme(root: QWidget | None, theme: str) -> bool:
    import pyqtgraph as pg  # not at import time: the first paint must not wait for pyqtgraph

    dark = resolve(theme)
    app = QApplication.instance()
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    background, foreground = ("#1e1e1e", "#dddddd") if dark else ("w", "k")
    pg.setConfigOptions(background=background, foreground=foreground)
    if root is not None and "pyqtgraph" in sys.modules:
        for plot in root.findChildren(pg.PlotWidget):
            restyle_plot(plot, background, foreground)
    return dark


def restyle_plot(plot, background, foreground) -> None:
    plot.setBackground(background)
    item = plot.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(foreground)
        axis.setTextPen(foreground)
    if item.titleLabel is not None and item.titleLabel.text:
        item.setTitle(item.titleLabel.text, color=foreground)
