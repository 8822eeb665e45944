"""Optiscope: `python main.py` opens the window; `python main.py --help` lists the headless commands."""
from __future__ import annotations

import sys
import time

_STARTED = time.perf_counter()


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
