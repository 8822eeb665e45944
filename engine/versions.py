"""Versions of the app and the libraries it runs on, for --version, Help > About and session files."""
from __future__ import annotations

import platform
import sys
from importlib import metadata

APP_VERSION = "0.1.0"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    import numpy
    import torch
    return {
        "optiscope": APP_VERSION, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": numpy.__version__, "PySide6": _version("PySide6-Essentials") if _version("PySide6") ==
        "not installed" else _version("PySide6"), "Qt": _qt_version(), "pyqtgraph": _version("pyqtgraph"),
    }


def _qt_version() -> str:
    # Only reported when the binding is already loaded: the engine itself must not import Qt.
    qtcore = sys.modules.get("PySide6.QtCore")
    return qtcore.qVersion() if qtcore is not None else "(not loaded)"


def version_text() -> str:
    return "\n".join(f"{k} {v}" for k, v in versions().items())
