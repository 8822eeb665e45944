"""The results table of a race: per trajectory (or per optimiser, for clouds) its convergence status and
the step it happened at, steps to tolerance, final loss, distance to the nearest known minimum,
gradient evaluations and wall time. Rows come from ``engine.diagnostics.results_table``/``summary_table``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QIcon, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

STATUS_COLOURS = {"converged": "#009E73", "diverged": "#D55E00", "oscillating": "#E69F00", "stalled": "#CC79A7",
                  "running": "#888888"}
COLUMNS = ("optimiser", "status", "to tol.", "final loss", "dist. min", "evals", "time")
SUMMARY_COLUMNS = ("optimiser", "trajectories", "converged", "diverged", "oscillating", "stalled", "running",
                   "median steps to tol.", "median final loss", "best final loss", "grad evals", "wall time")
COLUMN_TIPS = {
    "status": "converged, diverged, oscillating, stalled or running, with the step at which it began "
              "(engine.diagnostics.ConvergenceTracker).",
    "to tol.": "Steps to tolerance: the first step with gradient norm under 1e-6 or within 1e-3 of a known minimum.",
    "median steps to tol.": "Median steps to tolerance of the trajectories that reached it.",
    "final loss": "Last finite loss (for a diverged trajectory: before it diverged).",
    "dist. min": "Distance from the last point to the nearest known minimum (– when none is known).",
    "evals": "Gradient evaluations (L-BFGS's line search counts every one).",
    "grad evals": "Gradient evaluations (L-BFGS's line search counts every one).",
    "time": "Wall time: engine time of the run so far (all optimisers step in one loop, so it is shared).",
    "wall time": "Engine time of the run so far (all optimisers step in one loop, so it is shared).",
}


def _text(value: Any, kind: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if kind == "time":
            return f"{value:.2f} s"
        return f"{value:.4g}"
    return str(value)


class ResultsTable(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[dict[str, Any]] = []
        self.summary = False
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideRight)
        font = self.table.font()
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        self.table.setFont(font)
        self.table.horizontalHeader().setMinimumSectionSize(30)
        self._set_columns(COLUMNS)
        self.note = QLabel("Statuses update as the race runs; converged and diverged are final.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #888;")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)

    def _set_columns(self, columns: Sequence[str]) -> None:
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(list(columns))
        for c, name in enumerate(columns):
            item = self.table.horizontalHeaderItem(c)
            if name in COLUMN_TIPS:
                item.setToolTip(COLUMN_TIPS[name])
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.Stretch)  # names give way (elided) before numbers do
        header.setStretchLastSection(False)

    def clear(self) -> None:
        self.rows = []
        self.table.setRowCount(0)

    def set_rows(self, rows: Sequence[dict[str, Any]], colours: Sequence[str], summary: bool = False) -> None:
        """``rows`` from results_table (one per trajectory) or summary_table (one per optimiser, ``summary``)."""
        if summary != self.summary or self.table.columnCount() != len(SUMMARY_COLUMNS if summary else COLUMNS):
            self.summary = summary
            self._set_columns(SUMMARY_COLUMNS if summary else COLUMNS)
        self.rows = list(rows)
        self.table.setUpdatesEnabled(False)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            if summary:
                values = [row["optimizer"], row["trajectories"], *(row[s] for s in
                          ("converged", "diverged", "oscillating", "stalled", "running")),
                          row["median_steps_to_tolerance"], row["median_final_loss"], row["best_final_loss"],
                          row["grad_evals"], row["wall_time"]]
                kinds = [""] * 11 + ["time"]
            else:
                n = row.get("trajectory", 0)
                label = row["optimizer"] if n == 0 else f"{row['optimizer']} [{n}]"
                status = row["status"] if row["status"] == "running" else f"{row['status']} at {row['status_step']}"
                values = [label, status, row["steps_to_tolerance"], row["final_loss"], row["distance_to_minimum"],
                          row["grad_evals"], row["wall_time"]]
                kinds = [""] * 6 + ["time"]
            for c, (value, kind) in enumerate(zip(values, kinds)):
                self._set(r, c, _text(value, kind))
            first = self.table.item(r, 0)
            index = row.get("index", 0)
            pix = QPixmap(12, 12)
            pix.fill(QColor(colours[index % len(colours)] if colours else "#888"))
            first.setIcon(QIcon(pix))
            if not summary:
                status_item = self.table.item(r, 1)
                status_item.setForeground(QBrush(QColor(STATUS_COLOURS.get(row["status"], "#888"))))
                font = status_item.font()
                font.setBold(row["status"] in ("converged", "diverged"))
                status_item.setFont(font)
        self.table.setUpdatesEnabled(True)

    def _set(self, r: int, c: int, text: str) -> None:
        item = self.table.item(r, c)
        if item is None:
            item = QTableWidgetItem(text)
            if c > 1:
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.table.setItem(r, c, item)
        elif item.text() != text:
            item.setText(text)

    def status_of(self, row: int) -> str:
        """The status column's text of a row, e.g. "converged at 312"."""
        return self.table.item(row, 1).text()
