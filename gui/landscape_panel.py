"""The 2D view: optimisers racing over a function's contour map, with live loss, gradient and rate curves."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPushButton,
                               QScrollArea, QSlider, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from engine.config import OptimizerConfig
from engine.functions import FUNCTIONS, TestFunction
from engine.landscape import LandscapeConfig, LandscapeFrame, StartsConfig, resolve_function, run_landscape
from engine.registry import ConfigError

from .optimizer_list import OptimizerList
from .param_form import ParamForm, format_number
from .plots import make_plot
from .series import Growing, decimate, positive_or_nan
from .style import DIVERGED_SYMBOL, colour, symbol
from .worker import GeneratorWorker

GRID = 220  # samples per axis of the colour map
CONTOUR_LEVELS = 14
DEFAULT_RACE = (("gd", {"lr": 0.001}), ("momentum", {"lr": 0.001}), ("rmsprop", {"lr": 0.01}),
                ("adam", {"lr": 0.05}))
MAX_PATH_POINTS = 6000  # a drawn trajectory is thinned to this many points; the history stays whole
MAX_PATH_TRAJECTORIES = 64  # beyond this, a cloud is drawn as heads only


def log_levels(z: np.ndarray) -> np.ndarray:
    """Colour-map values: log10 of the height above the sampled minimum; non-finite stays NaN."""
    finite = np.isfinite(z)
    out = np.full(z.shape, np.nan)
    if not finite.any():
        return out
    lo, hi = np.nanmin(z[finite]), np.nanmax(z[finite])
    floor = max((hi - lo) * 1e-6, 1e-12)
    out[finite] = np.log10(z[finite] - lo + floor)
    return out


def contour_paths(levels_img: np.ndarray, xs: np.ndarray, ys: np.ndarray, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """All iso-lines of the log-level image as one NaN-separated polyline in function coordinates."""
    finite = levels_img[np.isfinite(levels_img)]
    if finite.size == 0:
        return np.zeros(0), np.zeros(0)
    data = np.where(np.isfinite(levels_img), levels_img, finite.max())
    dx, dy = xs[1] - xs[0], ys[1] - ys[0]
    px, py = [], []
    for level in np.linspace(finite.min(), finite.max(), n_levels + 2)[1:-1]:
        for line in pg.functions.isocurve(data, level, connected=True):
            arr = np.asarray(line, dtype=np.float64)
            # isocurve returns (row, col) in pixel-edge units: pixel i spans [i, i+1], centre at i + 0.5.
            py.append(ys[0] + (arr[:, 0] - 0.5) * dy)
            px.append(xs[0] + (arr[:, 1] - 0.5) * dx)
            px.append([np.nan])
            py.append([np.nan])
    if not px:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(px), np.concatenate(py)


def thin_path(x: np.ndarray, y: np.ndarray, max_points: int = MAX_PATH_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th point of a long trajectory for drawing (the newest always kept); the history stays whole."""
    n = len(x)
    if n <= max_points:
        return x, y
    idx = np.unique(np.concatenate([np.linspace(0, n - 1, max_points).astype(np.int64), [n - 1]]))
    return x[idx], y[idx]


class RaceHistory:
    """Everything the 2D plots draw, appended frame by frame."""

    def __init__(self, k: int, n: int):
        self.k, self.n = k, n
        self.steps = Growing((), np.int64)
        self.xy = Growing((k, n, 2))
        self.loss = Growing((k,))
        self.grad_norm = Growing((k,))
        self.lr = Growing((k,))
        self.last: LandscapeFrame | None = None

    def add(self, frames: list[LandscapeFrame]) -> None:
        if not frames:
            return
        self.steps.extend(np.array([f.step for f in frames]))
        self.xy.extend(np.stack([f.xy for f in frames]))
        with warnings.catch_warnings():
            # A fully diverged optimiser has no finite value to average: NaN is the honest answer.
            warnings.simplefilter("ignore", RuntimeWarning)
            self.loss.extend(np.stack([np.nanmean(f.loss, axis=1) for f in frames]))
            self.grad_norm.extend(np.stack([np.nanmean(f.grad_norm, axis=1) for f in frames]))
        self.lr.extend(np.stack([f.lr for f in frames]))
        self.last = frames[-1]


class LandscapePanel(QWidget):
    message = Signal(str)  # problems to show the user (never a traceback)
    error = Signal(str, str)  # engine failure: message, details
    stats = Signal(int, float)  # step, steps per second

    def __init__(self, parent=None):
        super().__init__(parent)
        self.worker: GeneratorWorker | None = None
        self.history: RaceHistory | None = None
        self.run_configs: list[tuple[int, OptimizerConfig]] = []
        self.playing = False
        self.function: TestFunction = FUNCTIONS.get("rosenbrock")
        self.start_point: tuple[float, float] | None = None
        self._build_controls()
        self._build_plots()
        self._build_layout()
        self.timer = QTimer(self)
        self.timer.setInterval(16)  # ~60 Hz: draw whatever the worker produced since the last frame
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        for name, params in DEFAULT_RACE:
            self.optimizers.add(name, params)
        self.optimizers.changed.connect(self._settings_changed)
        self._function_changed()

    # ---- construction ----
    def _build_controls(self) -> None:
        self.function_combo = QComboBox()
        for name, fn in FUNCTIONS.items():
            self.function_combo.addItem(fn.label, name)
            self.function_combo.setItemData(self.function_combo.count() - 1,
                                            f"{fn.formula}\n{fn.description}", Qt.ToolTipRole)
        self.function_combo.addItem("Custom f(x, y)...", "custom")
        self.function_combo.setCurrentIndex(self.function_combo.findData("rosenbrock"))
        self.function_combo.setToolTip("The landscape the optimisers descend.")
        self.custom_edit = QLineEdit("sin(x) * cos(y) + 0.1 * (x**2 + y**2)")
        self.custom_edit.setToolTip("Type f(x, y): numbers, x, y, + - * / **, and sin cos tan exp log sqrt abs "
                                    "tanh ... Press Enter to draw it.")
        self.function_form_holder = QVBoxLayout()
        self.function_form: ParamForm | None = None
        self.formula_label = QLabel()
        self.formula_label.setWordWrap(True)
        self.start_x = QLineEdit()
        self.start_y = QLineEdit()
        for w in (self.start_x, self.start_y):
            w.setToolTip("Start point. Or click on the map: every trajectory restarts there.")
            w.editingFinished.connect(self._start_edited)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(1000)
        self.steps_spin.setToolTip("Number of optimiser steps in the run.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seed for gradient noise and random start clouds: same seed, same run.")
        self.optimizers = OptimizerList()

        self.play_button = QPushButton("Play")
        self.play_button.setToolTip("Play / pause the race (Space)")
        self.step_button = QPushButton("Step")
        self.step_button.setToolTip("Advance one optimiser step (.)")
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the start point with fresh optimisers (R)")
        self.speed = QSlider(Qt.Horizontal)
        self.speed.setRange(0, 100)
        self.speed.setValue(35)
        self.speed.setToolTip("Animation speed: optimiser steps drawn per frame (1 to 1000, logarithmic).")
        self.speed_label = QLabel()
        self.status_label = QLabel()
        self.speed.valueChanged.connect(self._update_speed_label)
        self._update_speed_label()

        self.function_combo.currentIndexChanged.connect(self._function_changed)
        self.custom_edit.returnPressed.connect(self._function_changed)
        self.steps_spin.valueChanged.connect(self._steps_changed)
        self.seed_spin.valueChanged.connect(self._settings_changed)
        self.play_button.clicked.connect(self.toggle_play)
        self.step_button.clicked.connect(self.single_step)
        self.reset_button.clicked.connect(self.reset)

    def _build_plots(self) -> None:
        self.map_plot = pg.PlotWidget()
        self.map_plot.setAspectLocked(False)
        self.map_plot.setLabel("bottom", "x")
        self.map_plot.setLabel("left", "y")
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get("cividis"))
        self.map_plot.addItem(self.image)
        self.contours = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 90), width=1), connect="finite")
        self.map_plot.addItem(self.contours)
        self.minima_item = pg.ScatterPlotItem(symbol="+", size=14, pen=pg.mkPen("w", width=2), brush=None)
        self.map_plot.addItem(self.minima_item)
        self.start_item = pg.ScatterPlotItem(symbol="o", size=10, pen=pg.mkPen("w", width=2), brush=None)
        self.map_plot.addItem(self.start_item)
        self.legend = self.map_plot.addLegend(offset=(10, 10))
        self.legend.setBrush(pg.mkBrush(255, 255, 255, 200))
        self.legend.setLabelTextColor("k")
        self.map_plot.scene().sigMouseClicked.connect(self._map_clicked)

        self.loss_plot = make_plot(left="loss f(x, y) - f*", bottom="step", log_y=True)
        self.grad_plot = make_plot(left="gradient norm", bottom="step", log_y=True)
        self.lr_plot = make_plot(left="learning rate", bottom="step", log_y=True)
        # No setXLink between these: with clip-to-view and auto-downsampling, linked x ranges ping-pong
        # between the views once a curve has more points than pixels, and painting never finishes.
        self.lr_cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.lr_plot.addItem(self.lr_cursor)
        self.paths: list[pg.PlotDataItem] = []
        self.heads: list[pg.ScatterPlotItem] = []
        self.loss_curves: list[pg.PlotDataItem] = []
        self.grad_curves: list[pg.PlotDataItem] = []
        self.lr_curves: list[pg.PlotDataItem] = []

    def _build_layout(self) -> None:
        controls = QWidget()
        col = QVBoxLayout(controls)
        fbox = QGroupBox("Function")
        fl = QVBoxLayout(fbox)
        fl.addWidget(self.function_combo)
        fl.addWidget(self.custom_edit)
        fl.addLayout(self.function_form_holder)
        fl.addWidget(self.formula_label)
        col.addWidget(fbox)
        rbox = QGroupBox("Run")
        rl = QFormLayout(rbox)
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_x)
        start_row.addWidget(self.start_y)
        rl.addRow("start (x, y)", start_row)
        rl.addRow("steps", self.steps_spin)
        rl.addRow("seed", self.seed_spin)
        col.addWidget(rbox)
        col.addWidget(self.optimizers)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

        transport = QHBoxLayout()
        for w in (self.play_button, self.step_button, self.reset_button):
            transport.addWidget(w)
        transport.addWidget(QLabel("speed"))
        transport.addWidget(self.speed, 1)
        transport.addWidget(self.speed_label)
        transport.addWidget(self.status_label, 2)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addLayout(transport)
        cl.addWidget(self.map_plot, 1)

        curves = QSplitter(Qt.Vertical)
        for plot in (self.loss_plot, self.grad_plot, self.lr_plot):
            curves.addWidget(plot)
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(curves)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([360, 680, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)

    # ---- settings ----
    def steps_per_frame(self) -> int:
        return max(1, int(round(10 ** (3 * self.speed.value() / 100))))

    def _update_speed_label(self) -> None:
        self.speed_label.setText(f"{self.steps_per_frame()} steps/frame")

    def _function_changed(self) -> None:
        name = self.function_combo.currentData()
        self.custom_edit.setVisible(name == "custom")
        try:
            if name == "custom":
                from engine.expression import make_custom_function
                fn = make_custom_function(self.custom_edit.text())
            else:
                fn = FUNCTIONS.get(name)
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        self.function = fn
        if self.function_form is not None:
            self.function_form.setParent(None)
            self.function_form.deleteLater()
        self.function_form = ParamForm(fn.params, f"function {fn.name}")
        self.function_form.changed.connect(self._function_params_changed)
        self.function_form.invalid.connect(self.message)
        self.function_form_holder.addWidget(self.function_form)
        self.formula_label.setText(f"f(x, y) = {fn.formula}")
        self.formula_label.setToolTip(fn.description)
        self.start_point = fn.start
        self._show_start()
        self._draw_function()
        self.reset()

    def _function_params_changed(self) -> None:
        self._draw_function()
        self.reset()

    def _function_params(self) -> dict[str, Any]:
        return self.function_form.values() if self.function_form is not None else {}

    def _draw_function(self) -> None:
        try:
            params = self._function_params()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        xs, ys, z = self.function.grid(GRID, GRID, params)
        levels = log_levels(z)
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        self.image.setImage(levels, autoLevels=True)
        self.image.setRect(QRectF(xs[0] - dx / 2, ys[0] - dy / 2, dx * len(xs), dy * len(ys)))
        cx, cy = contour_paths(levels, xs, ys, CONTOUR_LEVELS)
        self.contours.setData(cx, cy)
        minima = np.array(self.function.minima_for(params), dtype=float).reshape(-1, 2)
        self.minima_item.setData(minima[:, 0], minima[:, 1])
        (x0, x1), (y0, y1) = self.function.domain
        self.map_plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        self._minimum_value = self.function.min_value if self.function.min_value is not None else \
            float(np.nanmin(z[np.isfinite(z)])) if np.isfinite(z).any() else 0.0

    def _show_start(self) -> None:
        x, y = self.start_point
        self.start_x.setText(format_number(x))
        self.start_y.setText(format_number(y))
        self.start_item.setData([x], [y])

    def _start_edited(self) -> None:
        try:
            x, y = float(self.start_x.text()), float(self.start_y.text())
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError
        except ValueError:
            self.message.emit(f"start: expected two finite numbers, got {self.start_x.text()!r}, "
                              f"{self.start_y.text()!r}")
            self._show_start()
            return
        if (x, y) != self.start_point:
            self.start_point = (x, y)
            self._show_start()
            self.reset()

    def _map_clicked(self, event) -> None:
        if event.button() != Qt.LeftButton:
            return
        vb = self.map_plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        p: QPointF = vb.mapSceneToView(event.scenePos())
        self.start_point = (round(p.x(), 4), round(p.y(), 4))
        self._show_start()
        self.reset()
        self.play()

    def _steps_changed(self) -> None:
        self.optimizers.set_total_steps(self.steps_spin.value())
        self._settings_changed()

    def _settings_changed(self) -> None:
        # A running race keeps its settings; the next reset or play picks up the new ones.
        if self.worker is None:
            self._clear_items()

    def config(self) -> LandscapeConfig:
        """The race as configured; raises ConfigError naming the field when something is not acceptable."""
        self.run_configs = self.optimizers.enabled_configs()
        name = self.function_combo.currentData()
        return LandscapeConfig(
            function=name, function_params=self._function_params(),
            custom_expression=self.custom_edit.text() if name == "custom" else "",
            custom_domain=self.function.domain if name == "custom" else ((-3.0, 3.0), (-3.0, 3.0)),
            start=self.start_point, starts=StartsConfig(), steps=self.steps_spin.value(),
            seed=self.seed_spin.value(), optimizers=tuple(c for _, c in self.run_configs))

    # ---- transport ----
    def _ensure_worker(self) -> bool:
        if self.worker is not None:
            return True
        try:
            cfg = self.config()
            cfg.validate()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return False
        self._make_items(len(self.run_configs))
        self.history = RaceHistory(len(cfg.optimizers), cfg.starts.count)
        self.worker = GeneratorWorker(lambda: run_landscape(cfg), capacity=4096)
        self.worker.failed.connect(self._worker_failed)
        self.worker.start()
        return True

    def play(self) -> None:
        if self._ensure_worker():
            self.playing = True
            self.play_button.setText("Pause")

    def pause(self) -> None:
        self.playing = False
        self.play_button.setText("Play")

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def single_step(self) -> None:
        self.pause()
        if self._ensure_worker():
            self.worker.wait_for_records(1)
            self._consume(1)

    def reset(self) -> None:
        self.pause()
        self.stop_worker()
        self.history = None
        self._clear_items()
        self.status_label.setText("")

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _worker_failed(self, message: str, details: str) -> None:
        self.pause()
        self.error.emit(f"The run stopped: {message}", details)

    # ---- drawing ----
    def _clear_items(self) -> None:
        for item in self.paths + self.heads:
            self.map_plot.removeItem(item)
        for plot, items in ((self.loss_plot, self.loss_curves), (self.grad_plot, self.grad_curves),
                            (self.lr_plot, self.lr_curves)):
            for item in items:
                plot.removeItem(item)
        self.legend.clear()
        self.paths, self.heads, self.loss_curves, self.grad_curves, self.lr_curves = [], [], [], [], []

    def _make_items(self, k: int) -> None:
        """Plot items are made once per run and then only fed with setData."""
        self._clear_items()
        for j, (i, cfg) in enumerate(self.run_configs):
            c = colour(i)
            path = pg.PlotDataItem(pen=pg.mkPen(c, width=2), connect="finite")
            head = pg.ScatterPlotItem(symbol=symbol(i), size=11, pen=pg.mkPen("k", width=1), brush=pg.mkBrush(c))
            self.map_plot.addItem(path)
            self.map_plot.addItem(head)
            self.legend.addItem(head, cfg.label)
            self.paths.append(path)
            self.heads.append(head)
            for plot, store in ((self.loss_plot, self.loss_curves), (self.grad_plot, self.grad_curves),
                                (self.lr_plot, self.lr_curves)):
                curve = pg.PlotDataItem(pen=pg.mkPen(c, width=1), connect="finite", antialias=False)
                plot.addItem(curve)
                store.append(curve)

    def _tick(self) -> None:
        if self.worker is None or not self.playing:
            return
        self._consume(self.steps_per_frame())
        if self.worker is not None and self.worker.finished_and_drained():
            self.pause()

    def _consume(self, n: int) -> None:
        frames = self.worker.take(n)
        if not frames or self.history is None:
            return
        self.history.add(frames)
        self.redraw()
        last = frames[-1]
        self.stats.emit(last.step, last.step / last.elapsed if last.elapsed > 0 else 0.0)

    def redraw(self) -> None:
        h = self.history
        if h is None or h.last is None:
            return
        steps = h.steps.view.astype(np.float64)
        xy = h.xy.view
        last = h.last
        fmin = self._minimum_value
        statuses = []
        for j, (i, cfg) in enumerate(self.run_configs):
            if h.n == 1:
                self.paths[j].setData(*thin_path(xy[:, j, 0, 0], xy[:, j, 0, 1]))
            elif h.n <= MAX_PATH_TRAJECTORIES:
                traj = xy[:, j]  # (T, N, 2)
                padded = np.concatenate([traj, np.full((1, h.n, 2), np.nan)], axis=0)
                flat = padded.transpose(1, 0, 2).reshape(-1, 2)
                self.paths[j].setData(flat[:, 0], flat[:, 1])
            head = last.xy[j]
            dead = last.diverged_at[j] >= 0
            self.heads[j].setData(head[:, 0], head[:, 1], symbol=np.where(dead, DIVERGED_SYMBOL, symbol(i)).tolist())
            self.loss_curves[j].setData(*decimate(steps, positive_or_nan(h.loss.view[:, j] - fmin)))
            self.grad_curves[j].setData(*decimate(steps, positive_or_nan(h.grad_norm.view[:, j])))
            self.lr_curves[j].setData(*decimate(steps, positive_or_nan(h.lr.view[:, j])))
            if dead.all():
                statuses.append(f"{cfg.label}: diverged at step {int(last.diverged_at[j].min())}")
        self.lr_cursor.setValue(float(last.step))
        text = f"step {last.step}"
        if statuses:
            text += " | " + "; ".join(statuses)
        self.status_label.setText(text)
        self._update_legend_labels()

    def _update_legend_labels(self) -> None:
        last = self.history.last
        for j, (i, cfg) in enumerate(self.run_configs):
            label = cfg.label
            dead = last.diverged_at[j]
            if (dead >= 0).all():
                label += f" (diverged at step {int(dead.min())})"
            for sample, text_item in self.legend.items:
                if sample.item is self.heads[j] and text_item.text != label:
                    text_item.setText(label)

    def shutdown(self) -> None:
        self.timer.stop()
        self.stop_worker()
