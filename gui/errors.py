"""Errors reach the user as messages and a log file, never as a traceback on the terminal only."""
from __future__ import annotations

import logging
import sys
import traceback
from logging.handlers import RotatingFileHandler
from pathlib import Path

from platformdirs import user_log_dir

log = logging.getLogger("optiscope")


def log_path() -> Path:
    return Path(user_log_dir("optiscope", appauthor=False)) / "optiscope.log"


def setup_logging() -> Path | None:
    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=1_000_000, backupCount=2, encoding="utf-8")
    except OSError:
        return None  # a read-only home must not stop the app
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


def install_excepthook(show) -> None:
    """Uncaught exceptions in Qt slots go to ``show(message, details)`` instead of killing the app."""

    def hook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        details = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("uncaught: %s", details)
        try:
            show(f"Something went wrong: {exc}", details)
        except Exception:  # the hook must never raise
            sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = hook
