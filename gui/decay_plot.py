"""Adam + L2 beside AdamW: the per-axis effective weight-decay rate of each optimiser against step.

Coupled decay (Adam + L2, and the L2 option of the others) enters through the gradient, so the
adaptive denominator divides it: ``lr * wd / (sqrt(v_hat) + eps)`` per axis, different on each axis
and shrinking where gradients are large. Decoupled decay (AdamW) is ``lr * wd`` on every axis.
Values are ``engine.glyphs.effective_decay`` of each frame's optimizer.state (first trajectory).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from engine.config import OptimizerConfig
from engine.glyphs import effective_decay, hyperparameters, live_params

from .log_ticks import thin_log_labels
from .plots import make_plot
from .series import Growing, decimate, positive_or_nan
from .style import colour


def decays(cfg: OptimizerConfig) -> bool:
    """Whether this optimiser applies weight decay at all (wd > 0)."""
    try:
        return float(hyperparameters(cfg.name, cfg.params).get("weight_decay", 0.0)) > 0
    except (ValueError, KeyError):
        return False


def decay_kind(cfg: OptimizerConfig) -> str:
    h = hyperparameters(cfg.name, cfg.params)
    return "decoupled" if h.get("decoupled_weight_decay") else "coupled (L2)"


class DecayPlot(QWidget):
    compare_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = make_plot(left="effective decay per step", bottom="step", log_y=True, legend=True)
        thin_log_labels(self.plot.getAxis("left"))
        self.note = QLabel(
            "Coupled L2 (Adam + L2) is divided by Adam's denominator √v + ε (v bias-corrected) per axis, so it "
            "differs between x (solid) and y (dashed) and fades where gradients are large; decoupled decay "
            "(AdamW) is η·λ on both axes.")
        self.note.setWordWrap(True)
        self.empty = QLabel("No optimiser in this race uses weight decay.")
        self.empty.setStyleSheet("color: #888;")
        self.empty.setWordWrap(True)
        self.compare_button = QPushButton("Race Adam + L2 beside AdamW")
        self.compare_button.setSizePolicy(QSizePolicy.Preferred, QSizePolicy.Fixed)
        self.compare_button.setToolTip("Add Adam + L2 and AdamW with the same lr and weight decay to the race.")
        self.compare_button.clicked.connect(self.compare_requested)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.note)
        layout.addWidget(self.compare_button)
        self.plot.setVisible(False)
        self.note.setAlignment(Qt.AlignTop)
        self.which: list[int] = []  # run indices j of optimisers with weight decay
        self.steps = Growing((), np.int64)
        self.values: dict[int, Growing] = {}
        self.curves: dict[int, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self.configs: list[tuple[int, OptimizerConfig]] = []

    def reset(self, run_configs: Sequence[tuple[int, OptimizerConfig]]) -> None:
        """New run: curves for the optimisers that decay (``run_configs`` as the panel holds them)."""
        for pair in self.curves.values():
            for item in pair:
                self.plot.removeItem(item)
        legend = self.plot.getPlotItem().legend
        if legend is not None:
            legend.clear()
        self.configs = list(run_configs)
        self.which = [j for j, (_, cfg) in enumerate(self.configs) if decays(cfg)]
        self.steps = Growing((), np.int64)
        self.values = {j: Growing((2,)) for j in self.which}
        self.curves = {}
        for j in self.which:
            i, cfg = self.configs[j]
            c = colour(i)
            kind = decay_kind(cfg)
            x_curve = pg.PlotDataItem(pen=pg.mkPen(c, width=2), connect="finite",
                                      name=f"{cfg.label or cfg.name}: x ({kind})")
            y_curve = pg.PlotDataItem(pen=pg.mkPen(c, width=2, style=Qt.DashLine), connect="finite",
                                      name=f"{cfg.label or cfg.name}: y")
            self.plot.addItem(x_curve)
            self.plot.addItem(y_curve)
            self.curves[j] = (x_curve, y_curve)
        self.empty.setVisible(not self.which)
        self.plot.setVisible(bool(self.which))

    def add(self, frames: Sequence[Any]) -> None:
        """Append the effective decay of each frame (trajectory 0) for the optimisers that decay."""
        if not self.which or not frames:
            return
        self.steps.extend(np.array([f.step for f in frames]))
        for j in self.which:
            _, cfg = self.configs[j]
            rows = np.full((len(frames), 2), np.nan)
            for n, f in enumerate(frames):
                if not f.state or f.diverged_at[j, 0] >= 0:
                    continue
                try:
                    d = effective_decay(cfg.name, live_params(f, j, cfg.params), f.state[j], float(f.lr[j]))
                except (ValueError, KeyError):
                    d = None
                if d is not None:
                    rows[n] = np.asarray(d)[0]
            self.values[j].extend(rows)

    def redraw(self) -> None:
        steps = self.steps.view.astype(np.float64)
        for j, (x_curve, y_curve) in self.curves.items():
            v = self.values[j].view
            x_curve.setData(*decimate(steps, positive_or_nan(v[:, 0])))
            y_curve.setData(*decimate(steps, positive_or_nan(v[:, 1])))
