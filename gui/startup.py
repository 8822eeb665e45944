"""What the window shows while torch loads: the default map from a precomputed image, and the background loader.

Importing torch takes seconds on a lab machine; the window paints first and the engine arrives after.
Nothing here imports torch or pyqtgraph (pyqtgraph alone costs most of a second), so the first paint
needs only Qt.
"""
from __future__ import annotations

import threading
import traceback

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from engine.paths import RESOURCES

STARTUP_MAP = RESOURCES / "startup" / "default_map.npz"

# Imported off the GUI thread. torch._dynamo is pulled in by the first torch.optim optimiser built
# (about 1.5 s here), so it is loaded now rather than on the user's first click.
HEAVY_MODULES = ("pyqtgraph", "torch", "torch._dynamo", "engine.landscape", "engine.training", "engine.glyphs",
                 "engine.diagnostics")


class EngineLoader(QObject):
    """Imports torch and the engine in a Python thread; ``ready`` or ``failed`` arrive on the GUI thread."""

    ready = Signal()
    failed = Signal(str, str)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="optiscope-engine-loader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import importlib
        try:
            for name in HEAVY_MODULES:
                importlib.import_module(name)
            self.ready.emit()
        except Exception as exc:  # shown to the user: the window stays up with the reason
            self.failed.emit(f"Could not load the engine: {exc}", traceback.format_exc())

    def join(self, timeout: float = 30.0) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout)


class StartupView(QWidget):
    """The default function's colour map, drawn from resources before torch and pyqtgraph are loaded."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.note = QLabel("Loading torch and the engine... the controls appear in a moment.")
        self.note.setAlignment(Qt.AlignCenter)
        layout.addWidget(self.note)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignCenter)
        self.picture.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        layout.addWidget(self.picture, 1)
        self._pixmap: QPixmap | None = None
        try:
            rgb = np.load(STARTUP_MAP)["rgb"]
        except (OSError, KeyError):
            return  # no cached map: the note alone says what is happening
        h, w, _ = rgb.shape
        self._image = QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        self._pixmap = QPixmap.fromImage(self._image)

    def resizeEvent(self, event) -> None:
        if self._pixmap is not None:
            self.picture.setPixmap(self._pixmap.scaled(self.picture.size(), Qt.IgnoreAspectRatio,
                                                       Qt.SmoothTransformation))
        super().resizeEvent(event)
