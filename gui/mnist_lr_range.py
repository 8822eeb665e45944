"""The learning-rate range test page: loss against an exponentially growing rate, and the suggested rate."""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.lr_range import PARAMS, LRRangeConfig, RangeResult
from engine.registry import ConfigError
from engine.training_process import RangeBlock

from .param_form import ParamForm
from .plots import make_plot
from .series import Growing, finite_or_nan


class RangePage(QWidget):
    """Controls, the loss-vs-rate plot (log x) and the suggestion. The panel runs the test."""

    run_requested = Signal(int, object)  # run row, LRRangeConfig
    use_requested = Signal(int, float)  # run row, rate

    def __init__(self, parent=None):
        super().__init__(parent)
        self.form = ParamForm(PARAMS, "lr range")
        self.run_combo = QComboBox()
        self.run_combo.setToolTip("The run whose optimiser, model, batch size and regularisers the test uses "
                                  "(its schedule is replaced by the growing rate).")
        self.start_button = QPushButton("Run range test")
        self.start_button.setToolTip("Train a fresh copy of the chosen run (same seed and batches) while the rate grows "
                                     "exponentially from the start rate to the end rate; stop when the loss blows up.")
        self.use_button = QPushButton("Use suggested rate")
        self.use_button.setToolTip("Set the chosen run's learning rate to the suggested one.")
        self.use_button.setEnabled(False)
        self.result = QLabel("Run the test to see where the loss falls fastest.")
        self.result.setWordWrap(True)
        self.plot = make_plot("Learning-rate range test", "loss", "learning rate (log)", legend=True)
        self.plot.setLogMode(True, False)
        self.plot.setToolTip("Loss of each mini-batch (thin) and its smoothed average (thick) against the rate it was "
                             "trained with. The suggested rate (solid line) is where the smoothed loss falls fastest; "
                             "the dotted line is the rate at the minimum divided by 10.")
        self.raw = self.plot.plot(pen=pg.mkPen("#999", width=1), name="mini-batch loss")
        self.smooth = self.plot.plot(pen=pg.mkPen("#0072B2", width=2.5), name="smoothed")
        self.suggest_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#D55E00", width=2),
                                            label="suggested", labelOpts={"position": 0.9,
                                                                                      "color": "#D55E00"})
        self.min_line = pg.InfiniteLine(angle=90, pen=pg.mkPen("#009E73", width=1.5, style=Qt.DotLine),
                                        label="min / 10", labelOpts={"position": 0.75, "color": "#009E73"})
        self.suggest_point = self.plot.plot(pen=None, symbol="o", symbolSize=12, symbolBrush="#D55E00")
        controls = QVBoxLayout()
        controls.addWidget(self.form)
        row = QHBoxLayout()
        row.addWidget(QLabel("run"))
        row.addWidget(self.run_combo, 1)
        controls.addLayout(row)
        controls.addWidget(self.start_button)
        controls.addWidget(self.use_button)
        controls.addWidget(self.result)
        controls.addStretch(1)
        side = QWidget()
        side.setLayout(controls)
        side.setMaximumWidth(300)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(side)
        layout.addWidget(self.plot, 1)
        self.lrs = Growing()
        self.losses = Growing()
        self.smoothed = Growing()
        self.outcome: RangeResult | None = None
        self.row = 0
        self.start_button.clicked.connect(self._start)
        self.use_button.clicked.connect(self._use)

    def set_runs(self, labels: list[str]) -> None:
        current = self.run_combo.currentIndex()
        self.run_combo.clear()
        for k, label in enumerate(labels):
            self.run_combo.addItem(f"{k + 1}. {label}")
        self.run_combo.setCurrentIndex(min(max(current, 0), max(len(labels) - 1, 0)))

    def config(self) -> LRRangeConfig:
        v = self.form.values()
        return LRRangeConfig(v["start_lr"], v["end_lr"], v["steps"], v["smoothing"], v["diverge_factor"]).validate()

    def _start(self) -> None:
        try:
            cfg = self.config()
        except ConfigError as exc:
            self.result.setText(str(exc))
            self.run_requested.emit(-1, str(exc))
            return
        self.run_requested.emit(self.run_combo.currentIndex(), cfg)

    def _use(self) -> None:
        if self.outcome is not None and math.isfinite(self.outcome.suggested_lr):
            self.use_requested.emit(self.row, self.outcome.suggested_lr)

    # ---- fed by the panel ----
    def begin(self, row: int, label: str, cfg: LRRangeConfig | None = None) -> None:
        """A new test: the previous one's curves go, and the axes show the rates this one will sweep
        (``cfg``), not the previous test's range, until its first points arrive."""
        self.row = row
        self.outcome = None
        self.lrs.clear()
        self.losses.clear()
        self.smoothed.clear()
        self.raw.setData([], [])
        self.smooth.setData([], [])
        self.suggest_point.setData([], [])
        for line in (self.suggest_line, self.min_line):
            if line.scene() is not None:
                self.plot.removeItem(line)
        if cfg is not None and cfg.start_lr > 0 and cfg.end_lr > cfg.start_lr:
            self.plot.setXRange(math.log10(cfg.start_lr), math.log10(cfg.end_lr), padding=0.02)
            self.plot.setYRange(0.0, 2.5, padding=0)
            self.plot.enableAutoRange()  # auto-range again once the points come (nothing to fit until then)
        self.use_button.setEnabled(False)
        self.start_button.setEnabled(False)
        self.result.setText(f"Testing run {row + 1} ({label})...")

    def add(self, item) -> None:
        if isinstance(item, RangeBlock):
            self.lrs.extend(item.lr)
            self.losses.extend(item.loss)
            self.smoothed.extend(item.smoothed)
            self.raw.setData(self.lrs.view, finite_or_nan(self.losses.view), connect="finite")
            self.smooth.setData(self.lrs.view, finite_or_nan(self.smoothed.view), connect="finite")
        elif isinstance(item, RangeResult):
            self.outcome = item
            self._show_result(item)

    def _show_result(self, r: RangeResult) -> None:
        self.start_button.setEnabled(True)
        if math.isfinite(r.suggested_lr):
            self.suggest_line.setValue(math.log10(r.suggested_lr))  # log-x axis: lines take log10 values
            self.suggest_line.label.setFormat(f"suggested {r.suggested_lr:.3g}")
            self.plot.addItem(self.suggest_line)
            y = r.smoothed[r.suggested_index] if 0 <= r.suggested_index < len(r.smoothed) else np.nan
            self.suggest_point.setData([r.suggested_lr], [y])
            self.use_button.setEnabled(True)
        if math.isfinite(r.min_over_10) and r.min_over_10 > 0:
            self.min_line.setValue(math.log10(r.min_over_10))
            self.min_line.label.setFormat(f"min / 10 = {r.min_over_10:.3g}")
            self.plot.addItem(self.min_line)
        text = (f"Suggested rate {r.suggested_lr:.3g}" if math.isfinite(r.suggested_lr) else "No suggestion")
        text += f" (min/10: {r.min_over_10:.3g}). {r.reason[:1].upper()}{r.reason[1:]}. {len(r.lrs)} steps in " \
                f"{r.wall_time:.1f} s."
        self.result.setText(text)

    def end(self, failed: str = "") -> None:
        self.start_button.setEnabled(True)
        if failed:
            self.result.setText(f"The range test failed: {failed}")
        elif self.outcome is None:
            self.result.setText("The range test was stopped.")
