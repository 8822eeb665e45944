"""Starting the Qt application."""
from __future__ import annotations

import logging
import os
import sys

import pyqtgraph as pg
import torch
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from .main_window import MainWindow


def configure() -> None:
    # Row-major images: Z[row = y, col = x], as the engine's grids are laid out.
    # segmentedLineMode "on": Qt's stroker takes minutes on one long, wide, self-crossing path (a
    # trajectory of a few thousand steps); drawing it as separate segments stays linear.
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k",
                        segmentedLineMode="on")

    # Leave the GUI a core for drawing while the engine trains.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


def main(argv: list[str] | None = None) -> int:
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setApplicationName("Optiscope")
    app.setOrganizationName("Optiscope")
    configure()
    window = MainWindow(QSettings())
    window.show()
    return app.exec()
