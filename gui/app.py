"""Starting the Qt application: the window first, torch in the background."""
from __future__ import annotations

import os
import signal
import sys
import time

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication


def configure() -> None:
    import pyqtgraph as pg

    # Row-major images: Z[row = y, col = x], as the engine's grids are laid out.
    # segmentedLineMode "on": Qt's stroker can take minutes on one long, wide, self-crossing path (a
    # trajectory of a few thousand steps); drawing it as separate segments stays linear.
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k",
                        segmentedLineMode="on")


def configure_torch() -> None:
    import torch
    # Leave the GUI a core for drawing while the engine trains.
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))


class _FirstPaintProbe(QObject):
    """For bench/bench_startup.py: prints the seconds from launch to the window's first paint, then quits."""

    def __init__(self, started: float):
        super().__init__()
        self.started = started

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Paint and obj.isWindow():
            print(f"first-paint {time.perf_counter() - self.started:.3f}", flush=True)
            QApplication.instance().removeEventFilter(self)
            QTimer.singleShot(0, QApplication.instance().quit)
        return False


def main(argv: list[str] | None = None, started: float | None = None) -> int:
    from .errors import install_excepthook, setup_logging
    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setApplicationName("Optiscope")
    app.setOrganizationName("Optiscope")
    setup_logging()
    if os.environ.get("OPTISCOPE_STARTUP_PROBE"):
        probe = _FirstPaintProbe(started or time.perf_counter())
        app.installEventFilter(probe)
    window = MainWindow(_settings(), eager=False, before_panels=lambda: (configure(), configure_torch()),
                        restore_session=True)
    install_excepthook(window.show_error)
    # Ctrl-C in the terminal closes the window as its close button does (the last session is saved), instead
    # of a KeyboardInterrupt inside whichever slot was running. Python runs the handler at the next timer tick.
    signal.signal(signal.SIGINT, lambda *_: window.close())
    window.show()
    return app.exec()


def _settings() -> QSettings:
    """The window's layout and choices: beside the last session when OPTISCOPE_STATE_DIR moves the app's state
    (tests, a second profile), else where Qt keeps an application's settings."""
    override = os.environ.get("OPTISCOPE_STATE_DIR")
    if override:
        return QSettings(os.path.join(override, "settings.ini"), QSettings.IniFormat)
    return QSettings()
