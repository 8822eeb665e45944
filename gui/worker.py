"""Runs an engine generator off the GUI thread; the GUI pulls what it produced at display rate.

No signal per optimiser step: records go into a buffer under a lock, and a QTimer on the GUI side
drains it. A bounded buffer lets the 2D race run ahead of the animation without unbounded memory.
"""
from __future__ import annotations

import threading
import traceback
from collections import deque
from typing import Any, Callable, Iterator

from PySide6.QtCore import QThread, Signal


class GeneratorWorker(QThread):
    """Iterates ``factory()`` in a QThread. ``take(n)`` hands the GUI up to n records.

    ``capacity`` bounds how far the worker may run ahead, in records (None: unbounded, for training runs
    whose every record the GUI drains each frame anyway); ``max_bytes`` bounds it in memory too, with
    ``sizeof(record)`` measured on the first record: a cloud of 100,000 starts makes frames of tens of MB,
    and 4,096 of them would be gigabytes held while the animation is paused.
    """

    failed = Signal(str, str)  # message, traceback text
    done = Signal()

    def __init__(self, factory: Callable[[], Iterator[Any]], capacity: int | None = 4096, parent=None,
                 max_bytes: int | None = None, sizeof: Callable[[Any], int] | None = None):
        super().__init__(parent)
        self._factory = factory
        self._capacity = capacity
        self._max_bytes = max_bytes if sizeof is not None else None
        self._sizeof = sizeof
        self._buffer: deque = deque()
        self._cond = threading.Condition()
        self._stop = False
        self.exhausted = False  # the generator ended (or failed); the buffer may still hold records
        self.error: BaseException | None = None

    def run(self) -> None:  # noqa: D401 - QThread entry point
        try:
            for record in self._factory():
                if self._max_bytes is not None:
                    self._bound_by_bytes(record)
                with self._cond:
                    while (self._capacity is not None and len(self._buffer) >= self._capacity
                           and not self._stop):
                        self._cond.wait(0.1)
                    if self._stop:
                        return
                    self._buffer.append(record)
                    self._cond.notify_all()
        except Exception as exc:  # engine errors become messages, never a dead app
            self.error = exc
            self.failed.emit(str(exc) or type(exc).__name__, traceback.format_exc())
        finally:
            with self._cond:
                self.exhausted = True
                self._cond.notify_all()
            self.done.emit()

    def _bound_by_bytes(self, record: Any) -> None:
        """Fix the capacity from the first record's size (the records of one run are all alike)."""
        size = max(1, int(self._sizeof(record)))
        by_bytes = max(2, self._max_bytes // size)
        self._capacity = by_bytes if self._capacity is None else min(self._capacity, by_bytes)
        self._max_bytes = None

    @property
    def capacity(self) -> int | None:
        return self._capacity

    def take(self, n: int | None = None) -> list[Any]:
        with self._cond:
            if n is None or n >= len(self._buffer):
                out = list(self._buffer)
                self._buffer.clear()
            else:
                out = [self._buffer.popleft() for _ in range(n)]
            self._cond.notify_all()
        return out

    def wait_for_records(self, n: int, timeout_s: float = 5.0) -> None:
        """Block briefly until n records are buffered or the generator ended (single-step mode)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._buffer) >= n or self.exhausted, timeout_s)

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer)

    def finished_and_drained(self) -> bool:
        """Every record taken and the thread ended. ``exhausted`` is set before ``run`` returns, so it alone
        would let a caller drop a thread that is still running, which aborts the process."""
        return self.exhausted and self.pending() == 0 and self.isFinished()

    def stop(self, wait_ms: int = 10_000) -> None:
        """Ask the generator to stop at its next record and wait for the thread to end."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self.isRunning():
            self.wait(wait_ms)
        with self._cond:
            self._buffer.clear()  # what it ran ahead is given back now, not when the worker is collected
