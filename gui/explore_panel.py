"""Basins of attraction and hyperparameter sweep maps: many runs at once, drawn as images.

Both run in a worker thread (progress shown, cancellable); the GUI only draws the finished result.
A click on a sweep cell hands that configuration to the 2D race (``replay``).
"""
from __future__ import annotations

import functools
import html

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QLineEdit, QProgressBar,
                               QPushButton, QScrollArea, QSpinBox, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from engine.basins import BasinResult, Progress, iter_basin_map
from engine.config import OptimizerConfig
from engine.functions import FUNCTIONS
from engine.landscape import LandscapeConfig
from engine.minibatch import data_objective_of
from engine.optimizers import OPTIMIZERS
from engine.registry import ConfigError
from engine.sweep import SWEEPABLE, SweepAxis, SweepConfig, SweepResult, iter_sweep

from .landscape_panel import CONTOUR_LEVELS, contour_paths, log_levels
from .param_form import ParamForm, batch_size_spin
from .plots import make_plot
from .style import PALETTE
from .worker import GeneratorWorker

NOT_CONVERGED_RGB = (170, 170, 170)
DIVERGED_RGB = (20, 20, 20)


def basin_image(result: BasinResult) -> np.ndarray:
    """(ny, nx, 3) uint8: a palette colour per minimum, grey for not converged, near-black for diverged."""
    rgb = np.empty(result.labels.shape + (3,), dtype=np.uint8)
    rgb[...] = NOT_CONVERGED_RGB
    rgb[result.labels == -2] = DIVERGED_RGB
    for k in range(len(result.minima)):
        c = PALETTE[k % (len(PALETTE) - 1)].lstrip("#")  # black is kept for "diverged"
        rgb[result.labels == k] = tuple(int(c[i:i + 2], 16) for i in (0, 2, 4))
    return rgb


def share_text(count: int, total: int) -> str:
    """A share of the starts: whole percent, but a small non-zero share is never shown as 0%."""
    if count == 0 or count == total or count / total >= 0.01:
        return f"{count / total:.0%}"
    return f"{count / total:.1%} ({count:,} starts)" if count / total >= 0.001 else f"{count:,} starts"


def basin_summary_html(result: BasinResult) -> str:
    """Rich text: each minimum's colour swatch, where it is, and its basin's share; then the rest."""
    total = result.labels.size
    parts = []
    for k, (size, (mx, my)) in enumerate(zip(result.basin_sizes(), result.minima)):
        colour = PALETTE[k % (len(PALETTE) - 1)]
        parts.append(f"<span style=\"color: {colour};\">&#9632;</span> ({mx:.3g}, {my:.3g}) {share_text(int(size), total)}")
    parts.append(f"grey: not at a known minimum {share_text(int(np.sum(result.labels == -1)), total)}")
    parts.append(f"black: diverged {share_text(int(np.sum(result.labels == -2)), total)}")
    return ", ".join(parts)


def _set_rect(item: pg.ImageItem, xs: np.ndarray, ys: np.ndarray) -> None:
    dx = (xs[-1] - xs[0]) / max(len(xs) - 1, 1)
    dy = (ys[-1] - ys[0]) / max(len(ys) - 1, 1)
    item.setRect(QRectF(xs[0] - dx / 2, ys[0] - dy / 2, dx * len(xs), dy * len(ys)))


def value_ticks(values: np.ndarray, most: int = 6) -> list[list[tuple[float, str]]]:
    """Ticks for an axis of cells: at most ``most`` cells labelled with their own values (the image is laid
    out by cell index, one unit a cell, so that log and linear axes both draw evenly), the ends included."""
    n = len(values)
    picks = np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(int))
    return [[(float(i), f"{values[i]:.3g}") for i in picks], []]


@functools.lru_cache(maxsize=8)
def _contours_of(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A listed function's grid ends and contour lines (xs, ys, cx, cy): the same for both maps and every
    computation, so worked out once."""
    xs, ys, z = FUNCTIONS.get(name).grid(160, 160)
    cx, cy = contour_paths(log_levels(z), xs, ys, CONTOUR_LEVELS)
    return xs, ys, cx, cy


class _Job:
    """A worker plus a progress bar and a cancel button."""

    def __init__(self, panel: "ExplorePanel", bar: QProgressBar, button: QPushButton, start_text: str,
                 more=lambda: False):
        self.panel, self.bar, self.button, self.start_text = panel, bar, button, start_text
        self.more = more  # True while another computation is queued after this one (the button stays Cancel)
        self.worker: GeneratorWorker | None = None
        self._stopping: list[GeneratorWorker] = []  # cancelled, not yet ended: kept alive until they end

    def start(self, factory, on_result) -> None:
        self.on_result = on_result
        if self.worker is not None:  # the previous computation gave its result but its thread may not have ended
            self._keep_until_finished(self.worker)
        self.worker = GeneratorWorker(factory, capacity=None)
        self.worker.failed.connect(lambda m, d: self.panel.error.emit(f"The computation stopped: {m}", d))
        self.worker.start()
        self.bar.setValue(0)
        self.button.setText("Cancel")

    def poll(self) -> None:
        if self.worker is None:
            return
        for record in self.worker.take():
            if isinstance(record, Progress):
                self.bar.setValue(int(100 * record.done / max(record.total, 1)))
            else:
                self.bar.setValue(100)
                self.on_result(record)
        if self.worker is not None and self.worker.finished_and_drained():
            self.worker = None
            if not self.more():
                self.button.setText(self.start_text)

    def cancel(self) -> None:
        """Stop the computation. The engine notices within about PROGRESS_S; should one step take longer,
        the thread is kept referenced until it ends (a QThread dropped while running aborts the process)."""
        if self.worker is not None:
            worker, self.worker = self.worker, None
            worker.stop(wait_ms=1_000)
            self._keep_until_finished(worker)
            self.button.setText(self.start_text)
            self.bar.setValue(0)

    def _keep_until_finished(self, worker: GeneratorWorker) -> None:
        """Hold a reference to a thread that is still running until it ends: a QThread dropped while running
        aborts the process."""
        if worker.isRunning():
            self._stopping.append(worker)
            worker.finished.connect(lambda w=worker: w in self._stopping and self._stopping.remove(w))

    def shutdown(self) -> None:
        """Cancel, then wait for every thread this job started: the window is closing."""
        self.cancel()
        for worker in self._stopping:
            worker.wait()
        self._stopping.clear()

    @property
    def running(self) -> bool:
        return self.worker is not None


class OptimizerPicker(QWidget):
    """An optimiser combo with its hyperparameter form (the race's specs)."""

    def __init__(self, default: str, names: list[str] | None = None, defaults: dict | None = None, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox()
        for name in names or OPTIMIZERS.names():
            spec = OPTIMIZERS.get(name)
            if spec.elementwise:
                self.combo.addItem(spec.label, name)
                self.combo.setItemData(self.combo.count() - 1, spec.help, Qt.ToolTipRole)
        self.combo.setCurrentIndex(max(self.combo.findData(default), 0))
        layout.addWidget(self.combo)
        self.holder = QVBoxLayout()
        layout.addLayout(self.holder)
        self.form: ParamForm | None = None
        self.defaults = defaults or {}
        self.combo.currentIndexChanged.connect(self._rebuild)
        self._rebuild()

    def _rebuild(self) -> None:
        if self.form is not None:
            self.form.setParent(None)
            self.form.deleteLater()
        spec = OPTIMIZERS.get(self.combo.currentData())
        self.form = ParamForm(spec.params, f"optimizer {spec.label}", self.defaults.get(spec.name))
        self.holder.addWidget(self.form)

    def name(self) -> str:
        return self.combo.currentData()

    def config(self) -> OptimizerConfig:
        return OptimizerConfig(self.name(), self.form.values(), label=OPTIMIZERS.get(self.name()).label)


class ExplorePanel(QWidget):
    message = Signal(str)
    error = Signal(str, str)
    replay = Signal(object)  # a LandscapeConfig for the race

    def __init__(self, parent=None):
        super().__init__(parent)
        self.sweep_result: SweepResult | None = None
        tabs = QTabWidget()
        tabs.addTab(self._build_basins(), "Basins of attraction")
        tabs.addTab(self._build_sweep(), "Hyperparameter sweep")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(tabs)
        self.timer = QTimer(self)
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._poll)
        self.timer.start()

    # ---- shared controls ----
    def _function_combo(self, default: str) -> QComboBox:
        combo = QComboBox()
        for name, fn in FUNCTIONS.items():
            combo.addItem(fn.label, name)
            combo.setItemData(combo.count() - 1, f"{fn.formula}\n{fn.description}", Qt.ToolTipRole)
        combo.setCurrentIndex(combo.findData(default))
        combo.setToolTip("The landscape every start point descends.")
        return combo

    def _map_plot(self, title: str) -> tuple[pg.PlotWidget, pg.ImageItem, pg.PlotDataItem, pg.ScatterPlotItem]:
        plot = make_plot(title, "y", "x")
        plot.setAspectLocked(False)
        image = pg.ImageItem()
        plot.addItem(image)
        contours = pg.PlotDataItem(pen=pg.mkPen((255, 255, 255, 110), width=1), connect="finite")
        plot.addItem(contours)
        minima = pg.ScatterPlotItem(symbol="+", size=14, pen=pg.mkPen("w", width=2), brush=None)
        plot.addItem(minima)
        return plot, image, contours, minima

    @staticmethod
    def _scroll(widget: QWidget) -> QScrollArea:
        scroll = QScrollArea()
        scroll.setWidget(widget)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(330)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        return scroll

    # ---- basins ----
    def _build_basins(self) -> QWidget:
        controls = QWidget()
        col = QVBoxLayout(controls)
        form = QFormLayout()
        self.basin_function = self._function_combo("himmelblau")
        form.addRow("function", self.basin_function)
        self.basin_resolution = QSpinBox()
        self.basin_resolution.setRange(10, 400)
        self.basin_resolution.setValue(200)
        self.basin_resolution.setToolTip("Start points per axis: 200 means a 200 x 200 grid of runs.")
        form.addRow("grid", self.basin_resolution)
        self.basin_steps = QSpinBox()
        self.basin_steps.setRange(1, 100_000)
        self.basin_steps.setValue(500)
        self.basin_steps.setToolTip("Steps each start runs before its end point is classified.")
        form.addRow("steps", self.basin_steps)
        col.addLayout(form)
        self.basin_pickers = []
        for title, default, lr in (("Optimiser A", "gd", 0.01), ("Optimiser B", "momentum", 0.01)):
            box = QGroupBox(title)
            bl = QVBoxLayout(box)
            picker = OptimizerPicker(default, defaults={default: {"lr": lr}})
            bl.addWidget(picker)
            col.addWidget(box)
            self.basin_pickers.append(picker)
        self.basin_compare = QCheckBox("compare A and B side by side")
        self.basin_compare.setChecked(True)
        col.addWidget(self.basin_compare)
        self.basin_button = QPushButton("Compute basins")
        self.basin_button.setToolTip("Run every start to completion and colour it by the minimum it reaches.")
        self.basin_progress = QProgressBar()
        self.basin_summary = QLabel()
        self.basin_summary.setTextFormat(Qt.RichText)
        self.basin_summary.setWordWrap(True)
        col.addWidget(self.basin_button)
        col.addWidget(self.basin_progress)
        col.addWidget(self.basin_summary)
        col.addStretch(1)
        legend = QLabel("Colour = the known minimum a start ends within tolerance of; grey = anywhere else "
                        "(still moving, or a local minimum not listed); black = diverged. + marks the known minima.")
        legend.setWordWrap(True)
        col.addWidget(legend)

        maps = QSplitter(Qt.Horizontal)
        self.basin_views = [self._map_plot("A"), self._map_plot("B")]
        for view in self.basin_views:
            maps.addWidget(view[0])
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self._scroll(controls))
        split.addWidget(maps)
        split.setStretchFactor(1, 1)
        self.basin_jobs = [_Job(self, self.basin_progress, self.basin_button, "Compute basins",
                                more=lambda: bool(self._pending_basins))]
        self.basin_button.clicked.connect(self._basins_clicked)
        self.basin_function.currentIndexChanged.connect(self._preview_basin_function)
        self._pending_basins: list = []
        self._computing_basin: int | None = None
        self._preview_basin_function()
        return split

    def _clear_basin_view(self, i: int, title: str) -> None:
        plot, image, _, _ = self.basin_views[i]
        image.clear()  # the function's contours stay (they are the chosen function's already), in grey
        self._ink(i, over_colours=False)
        plot.setTitle(title)

    def _ink(self, i: int, over_colours: bool) -> None:
        """Contours and minima of view i: white over a basin map, grey on the empty plot."""
        _, _, contours, minima = self.basin_views[i]
        ink = (255, 255, 255) if over_colours else (90, 90, 90)
        contours.setPen(pg.mkPen((*ink, 110 if over_colours else 160), width=1))
        minima.setPen(pg.mkPen(ink, width=2))

    def _draw_basin_function(self, i: int, fn, minima: np.ndarray, over_colours: bool = True) -> None:
        """View i's contours, known minima, axes and range for ``fn`` (the map's colours come separately):
        white over a basin map, grey on the empty plot."""
        plot, _, contours, minima_item = self.basin_views[i]
        xs, ys, cx, cy = _contours_of(fn.name)
        self._ink(i, over_colours)
        contours.setData(cx, cy)
        if len(minima):
            minima_item.setData(minima[:, 0], minima[:, 1])
        else:
            minima_item.setData([], [])
        data = data_objective_of(fn)  # a data-set objective's map is of its parameters (w, b), not of x, y
        bottom, left = (label.split(" ")[0] for label in data.axis_labels) if data is not None else ("x", "y")
        plot.setLabel("bottom", bottom)
        plot.setLabel("left", left)
        plot.setRange(xRange=(xs[0], xs[-1]), yRange=(ys[0], ys[-1]), padding=0)

    def _preview_basin_function(self) -> None:
        """Before a computation: the chosen function's contours and minima, so the maps are never blank."""
        fn = FUNCTIONS.get(self.basin_function.currentData())
        minima = np.asarray(fn.minima_for(fn.resolve({})), dtype=float).reshape(-1, 2)
        for i, (plot, image, _, _) in enumerate(self.basin_views):
            image.clear()
            self._draw_basin_function(i, fn, minima, over_colours=False)
            plot.setTitle(f"{'AB'[i]}: press Compute basins to colour each start by where it ends")

    def _basins_clicked(self) -> None:
        job = self.basin_jobs[0]
        if job.running or self._pending_basins:
            job.cancel()
            for i in [self._computing_basin] + [p[0] for p in self._pending_basins]:
                if i is not None:
                    self._clear_basin_view(i, "cancelled")
            self._pending_basins = []
            self._computing_basin = None
            return
        try:
            name = self.basin_function.currentData()
            configs = [p.config() for p in self.basin_pickers[: 2 if self.basin_compare.isChecked() else 1]]
            resolution, steps = self.basin_resolution.value(), self.basin_steps.value()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        self.basin_views[1][0].setVisible(len(configs) == 2)
        for i, oc in enumerate(configs):  # the previous maps go now: a cancel must not leave one beside the new
            self._clear_basin_view(i, f"{oc.label or oc.name}: {'computing' if i == 0 else 'waiting'}...")
        self._pending_basins = [(i, name, oc, resolution, steps) for i, oc in enumerate(configs)]
        self.basin_summary.setText("")
        self._next_basin()

    def _next_basin(self) -> None:
        if not self._pending_basins:
            return
        i, name, oc, resolution, steps = self._pending_basins.pop(0)
        self._computing_basin = i
        self.basin_views[i][0].setTitle(f"{oc.label or oc.name}: computing...")
        self.basin_progress.setFormat(f"{'AB'[i]} ({oc.label or oc.name}): %p%")
        self.basin_jobs[0].start(lambda: iter_basin_map(name, oc, resolution=resolution, steps=steps),
                                 lambda result, i=i: self._show_basins(i, result))

    def _show_basins(self, i: int, result: BasinResult) -> None:
        self._computing_basin = None
        plot, image, contours, minima = self.basin_views[i]
        image.setImage(basin_image(result), autoLevels=False)
        _set_rect(image, result.xs, result.ys)
        self._draw_basin_function(i, FUNCTIONS.get(result.function), result.minima)
        plot.setTitle(f"{result.optimizer.label or result.optimizer.name}: {len(result.xs)} x {len(result.ys)} "
                      f"starts, {result.steps} steps")
        line = f"<b>{html.escape(result.optimizer.label or result.optimizer.name)}</b>: {basin_summary_html(result)} " \
               f"({result.elapsed:.1f} s)"
        self.basin_summary.setText((self.basin_summary.text() + "<br>" if i else "") + line)
        QTimer.singleShot(0, self._next_basin)

    # ---- sweeps ----
    def _build_sweep(self) -> QWidget:
        controls = QWidget()
        col = QVBoxLayout(controls)
        form = QFormLayout()
        self.sweep_function = self._function_combo("rosenbrock")
        form.addRow("function", self.sweep_function)
        col.addLayout(form)
        box = QGroupBox("Optimiser (fixed settings)")
        bl = QVBoxLayout(box)
        self.sweep_picker = OptimizerPicker("adam", names=list(SWEEPABLE))
        bl.addWidget(self.sweep_picker)
        col.addWidget(box)
        self.axis_widgets = {}
        for axis, (param, lo, hi, n, log) in (("x", ("lr", 1e-4, 1.0, 64, True)),
                                               ("y", ("beta1", 0.0, 0.99, 64, False))):
            g = QGroupBox(f"{axis} axis")
            gl = QFormLayout(g)
            combo = QComboBox()
            lo_edit, hi_edit = QLineEdit(f"{lo:g}"), QLineEdit(f"{hi:g}")
            count = QSpinBox()
            count.setRange(2, 512)
            count.setValue(n)
            logbox = QCheckBox("log scale")
            logbox.setChecked(log)
            gl.addRow("hyperparameter", combo)
            gl.addRow("from", lo_edit)
            gl.addRow("to", hi_edit)
            gl.addRow("values", count)
            gl.addRow(logbox)
            col.addWidget(g)
            self.axis_widgets[axis] = (combo, lo_edit, hi_edit, count, logbox, param)
        rform = QFormLayout()
        self.sweep_steps = QSpinBox()
        self.sweep_steps.setRange(1, 100_000)
        self.sweep_steps.setValue(500)
        rform.addRow("steps", self.sweep_steps)
        self.sweep_tol = QLineEdit("1e-4")
        self.sweep_tol.setToolTip("Steps-to-tolerance counts steps until the loss is within this of the minimum.")
        rform.addRow("tolerance", self.sweep_tol)
        self.sweep_batch = batch_size_spin("Data-set objectives only: 0 (full batch) steps on the mean over all the "
                                           "data; otherwise every optimiser except GD steps on seeded mini-batches "
                                           "of this size, as in the 2D view (a replayed cell keeps it).")
        rform.addRow("batch size", self.sweep_batch)
        self.sweep_metric = QComboBox()
        self.sweep_metric.addItems(["final loss (log)", "steps to tolerance", "diverged at step"])
        rform.addRow("colour by", self.sweep_metric)
        col.addLayout(rform)
        self.sweep_button = QPushButton("Run sweep")
        self.sweep_button.setToolTip("Run every configuration of the grid at once (vectorised, checked against "
                                     "torch.optim cell by cell in the tests).")
        self.sweep_progress = QProgressBar()
        self.sweep_info = QLabel("Click a cell to replay it as a trajectory in the 2D view.")
        self.sweep_info.setWordWrap(True)
        col.addWidget(self.sweep_button)
        col.addWidget(self.sweep_progress)
        col.addWidget(self.sweep_info)
        col.addStretch(1)

        self.sweep_plot = make_plot("", "", "")
        self.sweep_image = pg.ImageItem()
        self.sweep_image.setColorMap(pg.colormap.get("viridis"))
        self.sweep_plot.addItem(self.sweep_image)
        self.sweep_bar = pg.ColorBarItem(colorMap=pg.colormap.get("viridis"), interactive=False, width=14)
        self.sweep_bar.setImageItem(self.sweep_image, insert_in=self.sweep_plot.getPlotItem())
        self.sweep_marker = pg.ScatterPlotItem(symbol="s", size=12, pen=pg.mkPen("r", width=2), brush=None)
        self.sweep_plot.addItem(self.sweep_marker)
        self.sweep_plot.scene().sigMouseClicked.connect(self._sweep_clicked)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self._scroll(controls))
        split.addWidget(self.sweep_plot)
        split.setStretchFactor(1, 1)
        self.sweep_job = _Job(self, self.sweep_progress, self.sweep_button, "Run sweep")
        self.sweep_button.clicked.connect(self._sweep_clicked_button)
        self.sweep_picker.combo.currentIndexChanged.connect(self._refill_axes)
        self.sweep_metric.currentIndexChanged.connect(self._draw_sweep)
        self.sweep_function.currentIndexChanged.connect(self._sweep_function_changed)
        for combo, *_ in self.axis_widgets.values():
            combo.currentTextChanged.connect(self._mark_swept)
        self._refill_axes()
        self._sweep_function_changed()
        return split

    def _sweep_function_changed(self) -> None:
        data = data_objective_of(FUNCTIONS.get(self.sweep_function.currentData()))
        self.sweep_batch.setEnabled(data is not None)
        if data is None:
            self.sweep_batch.setValue(0)

    def _swept(self) -> set[str]:
        return {combo.currentText() for combo, *_ in self.axis_widgets.values()}

    def _mark_swept(self) -> None:
        """The swept hyperparameters' fixed fields are off (the axes set them), so that they neither mislead
        nor, holding text that is not a number, refuse the sweep."""
        form = self.sweep_picker.form
        if form is None:
            return
        swept = self._swept()
        for name, w in form.widgets.items():
            w.setEnabled(name not in swept)
            if name in swept:
                w.setToolTip("Swept: the x or y axis sets it.")
            else:
                w.setToolTip(next(p for p in form.params if p.name == name).tooltip())

    def _refill_axes(self) -> None:
        names = SWEEPABLE[self.sweep_picker.name()]
        for axis, (combo, *_rest, default) in self.axis_widgets.items():
            current = combo.currentText() or default
            combo.clear()
            combo.addItems(list(names))
            fallback = names[0] if axis == "x" else names[min(1, len(names) - 1)]
            combo.setCurrentText(current if current in names else fallback)
        self._mark_swept()

    def sweep_config(self) -> SweepConfig:
        axes = {}
        for axis, (combo, lo, hi, count, logbox, _default) in self.axis_widgets.items():
            try:
                start, stop = float(lo.text()), float(hi.text())
            except ValueError:
                raise ConfigError(f"sweep.{axis}", f"range ends must be numbers, got {lo.text()!r} and "
                                  f"{hi.text()!r}") from None
            axes[axis] = SweepAxis(combo.currentText(), start, stop, count.value(), logbox.isChecked())
        try:
            tol = float(self.sweep_tol.text())
        except ValueError:
            raise ConfigError("sweep.tol", f"expected a number, got {self.sweep_tol.text()!r}") from None
        picker = self.sweep_picker
        fixed = picker.form.values(skip=self._swept())  # the swept ones come from the axes
        cfg = SweepConfig(function=self.sweep_function.currentData(), optimizer=picker.name(),
                          base_params=fixed, x=axes["x"], y=axes["y"], steps=self.sweep_steps.value(),
                          tol=tol, batch_size=self.sweep_batch.value())
        cfg.validate()
        return cfg

    def _sweep_clicked_button(self) -> None:
        if self.sweep_job.running:
            self.sweep_job.cancel()
            return
        try:
            cfg = self.sweep_config()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        self.sweep_job.start(lambda: iter_sweep(cfg), self._show_sweep)

    def _show_sweep(self, result: SweepResult) -> None:
        self.sweep_result = result
        self._draw_sweep()
        n = result.final_loss.size
        self.sweep_info.setText(
            f"{len(result.x_values)} x {len(result.y_values)} configurations x {result.config.steps} steps in "
            f"{result.elapsed:.2f} s; {np.mean(result.diverged_at >= 0):.0%} diverged, "
            f"{np.mean(result.steps_to_tol >= 0):.0%} reached the tolerance. Click a cell to replay it.")
        del n

    def _cell_geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell centres in plot coordinates: indices, so log and linear axes both draw as even cells."""
        r = self.sweep_result
        return np.arange(len(r.x_values), dtype=float), np.arange(len(r.y_values), dtype=float)

    def _draw_sweep(self) -> None:
        r = self.sweep_result
        if r is None:
            return
        mode = self.sweep_metric.currentIndex()
        if mode == 0 and r.f_star is not None:
            # A run can end exactly at f* (0 on Booth): the log is floored six decades below the tolerance, so
            # that those cells do not stretch the colour scale to -300 and flatten every other cell.
            floor = r.config.tol * 1e-6
            with np.errstate(all="ignore"):
                values = np.log10(np.maximum(r.final_loss - r.f_star, floor))
            label = f"log10(final loss - f*), floored at {floor:.0e}; blank: diverged"
        elif mode == 0:  # no known minimum: the loss itself (it may be negative)
            values = r.final_loss.astype(float)
            label = "final loss (no known minimum); blank: diverged"
        elif mode == 1:
            values = np.where(r.steps_to_tol >= 0, r.steps_to_tol, np.nan).astype(float)
            label = "steps to tolerance (blank: never)"
        else:
            values = np.where(r.diverged_at >= 0, r.diverged_at, np.nan).astype(float)
            label = "diverged at step (blank: never)"
        finite = np.isfinite(values)
        lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        self.sweep_image.setImage(values, autoLevels=False, levels=(lo, hi))
        self.sweep_bar.setLevels((lo, hi))
        self.sweep_image.setRect(QRectF(-0.5, -0.5, len(r.x_values), len(r.y_values)))
        cfg = r.config
        self.sweep_plot.setLabel("bottom", f"{cfg.x.param} ({'log' if cfg.x.log else 'linear'} axis)")
        self.sweep_plot.setLabel("left", f"{cfg.y.param} ({'log' if cfg.y.log else 'linear'} axis)")
        item = self.sweep_plot.getPlotItem()
        item.getAxis("bottom").setTicks(value_ticks(r.x_values))
        item.getAxis("left").setTicks(value_ticks(r.y_values))
        self.sweep_plot.setTitle(f"{label}; {cfg.x.param} {r.x_values[0]:.3g}..{r.x_values[-1]:.3g}, "
                                 f"{cfg.y.param} {r.y_values[0]:.3g}..{r.y_values[-1]:.3g}")
        self.sweep_plot.setRange(xRange=(-0.5, len(r.x_values) - 0.5), yRange=(-0.5, len(r.y_values) - 0.5),
                                 padding=0)

    def cell_at(self, x: float, y: float) -> tuple[int, int] | None:
        r = self.sweep_result
        if r is None:
            return None
        ix, iy = int(round(x)), int(round(y))
        if 0 <= ix < len(r.x_values) and 0 <= iy < len(r.y_values):
            return ix, iy
        return None

    def replay_cell(self, ix: int, iy: int) -> LandscapeConfig:
        r = self.sweep_result
        cfg = r.cell_landscape_config(ix, iy)
        self.sweep_marker.setData([ix], [iy])
        oc = cfg.optimizers[0]
        values = ", ".join(f"{k}={oc.params[k]:.4g}" for k in (r.config.x.param, r.config.y.param))
        self.sweep_info.setText(f"Cell ({ix}, {iy}): {values}; final loss {r.final_loss[iy, ix]:.4g}, "
                                f"steps to tolerance {r.steps_to_tol[iy, ix]}, diverged at {r.diverged_at[iy, ix]}.")
        self.replay.emit(cfg)
        return cfg

    def _sweep_clicked(self, event) -> None:
        if event.button() != Qt.LeftButton or self.sweep_result is None:
            return
        vb = self.sweep_plot.getPlotItem().vb
        if not vb.sceneBoundingRect().contains(event.scenePos()):
            return
        p = vb.mapSceneToView(event.scenePos())
        cell = self.cell_at(p.x(), p.y())
        if cell is not None:
            self.replay_cell(*cell)

    def _poll(self) -> None:
        self.basin_jobs[0].poll()
        self.sweep_job.poll()

    def shutdown(self) -> None:
        self.timer.stop()
        self._pending_basins = []
        self.basin_jobs[0].shutdown()
        self.sweep_job.shutdown()
