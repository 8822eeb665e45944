"""The results table of the MNIST view: one row per run, live while training, final at the end.

Columns: the run, its state, the epoch reached, the last validation accuracy, the best validation
accuracy and the epoch of it, the final train and validation losses, the test accuracy (when the data
has a test set), early stopping's counter, the gradients' health and the wall time.
"""
from __future__ import annotations

import math

import numpy as np

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from .mnist_plots import RunTrace
from .mnist_runs import run_icon

COLUMNS = (
    ("Run", "The run: its colour and marker in the plots, and its name."),
    ("State", "training, done, stopped early (best weights restored), diverged at a step, stopped by you (at a "
              "step: its own stop button or Stop) or failed."),
    ("Epoch", "Epochs trained so far (fractional while inside an epoch)."),
    ("Val acc", "Validation accuracy at the latest evaluation while training; at the end, of the final model (with "
                "early stopping: of the best weights restored, those of the lowest validation loss, marked "
                "'restored' with their epoch, as the losses beside it)."),
    ("Best val acc", "Highest validation accuracy over the run's evaluations."),
    ("at epoch", "Epoch of the evaluation with the highest validation accuracy."),
    ("Train loss", "Final training loss (eval mode, on the same fixed sample of training digits as the curves) of "
                   "the final model (the restored best weights with early stopping); the latest evaluation's while "
                   "training."),
    ("Val loss", "Final validation loss of the final model (the restored best weights with early stopping); the "
                 "latest evaluation's while training."),
    ("Test acc", "Accuracy on the real test set, scored once at the end (only when the data has one; a run stopped "
                 "before its end is not scored)."),
    ("Patience", "Early stopping: evaluations since the best, out of the patience."),
    ("Gradients", "Whether any layer's gradient norm crossed the exploding or vanishing threshold."),
    ("Wall time", "Seconds the run took (it shares the training process with the other runs)."),
)


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "not finite"
    return format(value, spec)


def _loss(value: float | None) -> str:
    """Four decimals, as losses are usually read; a blown-up loss (a run on its way to diverging) in powers
    of ten rather than twenty digits."""
    if value is not None and math.isfinite(value) and abs(value) >= 1e4:
        return format(value, ".3e")
    return _fmt(value, ".4f")


class ResultsTable(QTableWidget):
    run_selected = Signal(int)

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels([c for c, _ in COLUMNS])
        for k, (_, tip) in enumerate(COLUMNS):
            self.horizontalHeaderItem(k).setToolTip(tip)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        # Not ResizeToContents: that re-measures every cell at each change (half a millisecond per setText).
        # A column grows instead when a new text is wider than it (measured for the changed texts only), and
        # every column is fitted once the texts are final.
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        self._final_fit = False
        self._changed: dict[int, int] = {}  # column -> width of its widest new text this update
        self.setToolTip("One row per run; live while training, final at the end. Select a row to edit that run.")
        self.itemSelectionChanged.connect(self._selected)
        self._cache: dict[tuple[int, int], str] = {}

    def reset(self, traces: list[RunTrace]) -> None:
        self._cache.clear()
        self.setRowCount(len(traces))
        for r, t in enumerate(traces):
            for c in range(len(COLUMNS)):
                item = QTableWidgetItem("")
                if c:
                    item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.setItem(r, c, item)
            self.item(r, 0).setIcon(run_icon(t.index))
            self._set(r, 0, f"{t.index + 1}. {t.label}")
        self._changed.clear()
        self._final_fit = False
        self.fit_columns()  # the headers' widths, until texts come

    def _set(self, row: int, col: int, text: str, tip: str = "", warn: bool = False) -> None:
        key = (row, col)
        if self._cache.get(key) == text + tip + str(warn):
            return
        self._cache[key] = text + tip + str(warn)
        item = self.item(row, col)
        if item.text() != text:
            width = self.fontMetrics().horizontalAdvance(text)
            self._changed[col] = max(self._changed.get(col, 0), width)
        item.setText(text)
        item.setToolTip(tip or text)
        item.setForeground(QBrush(QColor("#D55E00")) if warn else QBrush())

    def update_rows(self, traces: list[RunTrace], explode: float, vanish: float) -> None:
        self._changed.clear()
        self._update_rows(traces, explode, vanish)
        if traces and all(t.finished for t in traces):
            if not self._final_fit:  # the texts are final: fit every column to them, once
                self._final_fit = True
                self.fit_columns()
            return
        margin = 2 * self.style().pixelMetric(self.style().PixelMetric.PM_FocusFrameHMargin) + 10
        for col, width in self._changed.items():
            if col and width + margin > self.columnWidth(col):
                self.resizeColumnToContents(col)

    def _update_rows(self, traces: list[RunTrace], explode: float, vanish: float) -> None:
        for r, t in enumerate(traces):
            if r >= self.rowCount():
                break
            s, ev = t.summary, t.last_eval
            state = t.state()
            tip = t.failed.message if t.failed is not None else state
            self._set(r, 1, state, tip, warn=t.failed is not None or (s is not None and s.diverged))
            self._set(r, 2, f"{t.current_epoch():.2f}")
            if s is not None and math.isfinite(s.final_val_acc):
                # The final model's accuracy, like the losses beside it: with early stopping, of the best
                # weights restored, not of the last evaluation.
                if s.restored_best:
                    at = f"epoch {s.best_loss_epoch:.2f}" if math.isfinite(s.best_loss_epoch) else "its best evaluation"
                    last = f"; the last evaluation's was {ev.val_acc:.1%}" if ev is not None else ""
                    tip = (f"Of the best weights (lowest validation loss, {at}), restored at the end; the train and "
                           f"validation losses are theirs too{last}.")
                    when = f", epoch {s.best_loss_epoch:.2f}" if math.isfinite(s.best_loss_epoch) else ""
                    self._set(r, 3, f"{s.final_val_acc:.1%} (restored{when})", tip)
                else:
                    self._set(r, 3, _fmt(s.final_val_acc, ".1%"), "Validation accuracy of the final model.")
            else:
                self._set(r, 3, _fmt(ev.val_acc if ev else None, ".1%"))
            if len(t.val_acc):
                b = int(np.argmax(t.val_acc.view))
                self._set(r, 4, _fmt(float(t.val_acc.view[b]), ".1%"))
                self._set(r, 5, _fmt(float(t.eval_epoch.view[b]), ".2f"))
            else:
                self._set(r, 4, "-")
                self._set(r, 5, "-")
            if s is not None:
                whose = " of the restored best weights" if s.restored_best else " of the final model"
                self._set(r, 6, _loss(s.final_train_loss), f"Training loss{whose}.")
                self._set(r, 7, _loss(s.final_val_loss), f"Validation loss{whose}.")
                self._set(r, 8, _fmt(s.test_acc, ".2%") if s.test_acc is not None else "no test set",
                          "Accuracy on the real test set" if s.test_acc is not None else
                          "This data source has no test set (the bundled subset is training digits only).")
                self._set(r, 11, f"{s.wall_time:.1f} s")
            else:
                self._set(r, 6, _loss(ev.train_loss if ev else None))
                self._set(r, 7, _loss(ev.val_loss if ev else None))
                has_test = t.started is not None and t.started.n_test > 0
                if t.finished and has_test:  # ended without a summary: stopped by you, or failed
                    why = "failed" if t.failed is not None else "stopped"
                    self._set(r, 8, f"not scored ({why})", "The test set is scored once, at the run's end; this run "
                                                           f"{why} before it.")
                elif t.started is not None and not t.started.n_test:
                    self._set(r, 8, "no test set", "This data source has no test set.")
                else:
                    self._set(r, 8, "at the end" if has_test else "-")
                self._set(r, 11, f"{t.elapsed.view[-1]:.1f} s" if len(t.elapsed) else "-")
            patience = t.cfg.early_stopping
            if patience:
                count = ev.patience_count if ev else 0
                self._set(r, 9, f"{count}/{patience}", warn=count >= patience)
            else:
                self._set(r, 9, "off")
            report = t.gradient_report(explode, vanish)
            if report is None:
                self._set(r, 10, "-")
            else:
                text = report.describe(t.layer_names)
                flags = [name for name, hit in (("exploding", report.exploding.any()),
                                                ("vanishing", report.vanishing.any())) if hit]
                self._set(r, 10, " + ".join(flags) or "ok", text, warn=not report.healthy)

    def fit_columns(self) -> None:
        """Size the columns to their contents (their headers while empty; every text once they are final)."""
        for c in range(1, self.columnCount()):
            self.resizeColumnToContents(c)

    def _selected(self) -> None:
        rows = self.selectionModel().selectedRows()
        if rows:
            self.run_selected.emit(rows[0].row())
