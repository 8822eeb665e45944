"""Optiscope: `python main.py` opens the window; `python main.py --help` lists the headless commands."""
from __future__ import annotations

import os
import sys
import time

_STARTED = time.perf_counter()
# Idle OpenMP threads otherwise spin and take the core the GUI draws on (set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        if "--version" in argv:
            import PySide6.QtCore  # noqa: F401 - loaded so that the version report can name Qt's version
        from engine.cli import run_cli
        return run_cli(argv)
    from gui.app import main as gui_main
    return gui_main(started=_STARTED)


if __name__ == "__main__":
    sys.exit(main())
