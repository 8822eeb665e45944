"""Metrics exports off the GUI thread, with a progress dialog and Cancel.

A long race's export reads millions of steps back from disk and formats them: seconds, which froze the
window when done in place. Here the export function runs on a QThread; it reports
``progress(fraction)`` between chunks, and that call raises ExportCancelled once Cancel is pressed, so the
export stops at the next chunk and its sink removes the .part file (no half file is ever left).

The dialog is window-modal: while an export runs the window repaints and animates, but takes no input
that could start a run, reset, open a session or start a second export. Closing the window cancels the
export and waits for the thread (at most one chunk's work), so no "QThread destroyed while running".
"""
from __future__ import annotations

import logging
import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QEvent, QObject, Qt, QThread, Signal
from PySide6.QtWidgets import QProgressDialog

from engine.registry import ConfigError

log = logging.getLogger(__name__)


class ExportCancelled(Exception):
    """Raised inside the export (through its progress callback) when the user cancels."""


class _ExportThread(QThread):
    progressed = Signal(int)  # percent
    succeeded = Signal(object)  # what the export function returned
    failed = Signal(str, str)  # message, traceback
    cancelled = Signal()

    def __init__(self, work: Callable[[Callable[[float], None]], Any]):
        super().__init__()
        self.work = work
        self.cancel_requested = threading.Event()
        self._percent = -1

    def _progress(self, fraction: float) -> None:
        if self.cancel_requested.is_set():
            raise ExportCancelled
        percent = max(0, min(99, int(100 * fraction)))  # 100 would close the dialog before the rename
        if percent != self._percent:
            self._percent = percent
            self.progressed.emit(percent)

    def run(self) -> None:
        try:
            result = self.work(self._progress)
        except ExportCancelled:
            self.cancelled.emit()
        except ConfigError as exc:  # a refused name or an unwritable place, already in words: no traceback
            self.failed.emit(str(exc), "")
        except Exception as exc:  # reported to the user on the GUI thread
            self.failed.emit(str(exc) or type(exc).__name__, traceback.format_exc())
        else:
            if self.cancel_requested.is_set():  # Cancel pressed after the last chunk: the file is whole
                log.info("export finished before the cancel took effect")
            self.succeeded.emit(result)


class BackgroundExport(QObject):
    """One export running on a worker thread, shown by a window-modal progress dialog.

    ``work(progress)`` runs on the thread and returns what ``on_done`` gets (on the GUI thread).
    ``on_error(message, details)`` gets a failure; ``on_cancel()`` a cancel; ``cleanup()`` runs after
    any of them (and when the window closes mid-export), on the GUI thread, exactly once.
    """

    def __init__(self, window, label: str, work: Callable[[Callable[[float], None]], Any],
                 on_done: Callable[[Any], None], on_error: Callable[[str, str], None],
                 on_cancel: Callable[[], None] | None = None, cleanup: Callable[[], None] | None = None):
        super().__init__(window)
        self.window = window
        self.on_done, self.on_error, self.on_cancel, self.cleanup = on_done, on_error, on_cancel, cleanup
        self.finished = False
        self.dialog = QProgressDialog(label, "Cancel", 0, 100, window)
        self.dialog.setWindowTitle("Export")
        self.dialog.setWindowModality(Qt.WindowModal)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(self.cancel)
        self.thread = _ExportThread(work)
        self.thread.progressed.connect(self._progressed)
        self.thread.succeeded.connect(self._succeeded)
        self.thread.failed.connect(self._failed)
        self.thread.cancelled.connect(self._cancelled)
        window.installEventFilter(self)
        # Shown at once, not after QProgressDialog's usual delay: its modality is what keeps the window
        # from starting a run (appending to the history being read) in the meantime.
        self.dialog.show()
        self.thread.start()

    def is_running(self) -> bool:
        return not self.finished

    def cancel(self) -> None:
        if not self.finished:
            self.thread.cancel_requested.set()
            self.dialog.setLabelText("Cancelling...")

    def wait(self) -> None:
        """Cancel, wait for the thread and clean up now (the window is closing)."""
        self.cancel()
        self.thread.wait()
        self._finish()

    def eventFilter(self, obj, event) -> bool:
        if obj is self.window and event.type() == QEvent.Close and not self.finished:
            # Before the window's own closeEvent drops the panels' data the export is reading.
            self.wait()
        return False

    def _progressed(self, percent: int) -> None:
        if not self.finished:
            self.dialog.setValue(percent)

    def _succeeded(self, result: Any) -> None:
        if self._finish():
            self.on_done(result)

    def _failed(self, message: str, details: str) -> None:
        if self._finish():
            self.on_error(message, details)

    def _cancelled(self) -> None:
        if self._finish() and self.on_cancel is not None:
            self.on_cancel()

    def _finish(self) -> bool:
        """Once: stop listening, close the dialog, release what the export held. False if already done."""
        if self.finished:
            return False
        self.finished = True
        self.thread.wait()  # it has emitted its last signal; run() returns right after
        self.window.removeEventFilter(self)
        self.dialog.canceled.disconnect(self.cancel)
        self.dialog.close()
        self.dialog.deleteLater()
        try:
            if self.cleanup is not None:
                self.cleanup()
        finally:
            self.deleteLater()
        return True
