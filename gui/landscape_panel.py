"""The 2D view: optimisers racing over a function's contour map, with live loss, gradient and rate curves,
glyphs of each optimiser's internal state at the head of its trajectory, a state panel, a results
table and the effective weight decay.

Layout: controls | transport, glyph toggles and the map | tabs (curves, state, results, decay).
Everything drawn per frame is an item made once per run and fed with setData, except what grows by a
little each frame and would cost its whole length to redraw: trails and paths are raster layers that draw
only their new segments (gui.plots.TrailLayer, PathLayer). The colour map, contours, axes and legend are
cached pixmaps; the curve plots keep ranges that only grow, so their axes stay put. The curves are drawn
only while their tab is shown; the other side tabs are refreshed at most ten times a second while
playing, and at once after a single step or a pause.
"""
from __future__ import annotations

import functools
import html
import math
import time
from functools import partial
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QScrollArea, QSizePolicy, QSlider, QSpinBox, QSplitter,
                               QTabWidget, QVBoxLayout, QWidget)

from engine.config import OptimizerConfig
from engine.diagnostics import DIVERGED as DIVERGED_CODE
from engine.diagnostics import RUNNING as RUNNING_CODE
from engine.diagnostics import STATUSES, ConvergenceTracker, results_table, summary_table
from engine.functions import FUNCTIONS, TestFunction, check_domain
from engine.glyphs import StepPart, decompose_frames, glyphs_for_frame, has_decomposition, live_params
from engine.landscape import (LandscapeConfig, LandscapeFrame, StartsConfig, resolve_function, run_landscape,
                              start_points)
from engine.minibatch import data_objective_of, known_minimum_value
from engine.registry import ConfigError
from engine.schedules import check_optimizer_schedule

from .decay_plot import DecayPlot
from .glyph_items import GLYPH_KINDS, GlyphLayer, swatch_icon
from .log_ticks import thin_log_labels
from .mathtext import latex_to_html
from .optimizer_list import MAX_OPTIMIZERS, OptimizerList
from .param_form import _BAD_STYLE, ParamForm, batch_size_spin, format_number
from .plots import (CurveSet, GrowingRanges, HeadsItem, PathLayer, TrailLayer, cache_axes, column_extremes, make_plot,
                    use_own_export_menu)
from .results_table import ResultsTable
from .race_history import MAX_TRAIL_TRAJECTORIES, TRAIL_STEPS, RaceHistory  # noqa: F401 (re-exported)
from .series import positive_or_nan, thin_path  # noqa: F401 (thin_path re-exported)
from .state_panel import StatePanel
from .style import DIVERGED_SYMBOL, PALETTE, colour, symbol
from .memory import release_freed_memory
from .worker import GeneratorWorker

GRID = 220  # samples per axis of the colour map
CONTOUR_LEVELS = 14
DEFAULT_RACE = (("gd", {"lr": 0.001}), ("momentum", {"lr": 0.001}), ("rmsprop", {"lr": 0.01}),
                ("adam", {"lr": 0.05}))
MAX_PATH_TRAJECTORIES = 1  # more trajectories than this are a cloud: heads and fading trails
TRAIL_BANDS = 5  # ... drawn as this many age bands of 4 steps, older ones fainter (an image each: plots.TrailLayer)
MAX_GLYPH_TRAJECTORIES = 64  # glyphs for at most this many heads per optimiser
SIDE_REFRESH_S = 0.1  # state panel, results table and decay plot: at most 10 Hz while playing
CURVE_REFRESH_S = 1 / 30  # the curve plots: at most 30 Hz while playing (the map animates at the frame rate)
DEFAULT_CUSTOM = "sin(x) * cos(y) + 0.1 * (x**2 + y**2)"
DEFAULT_DOMAIN = ((-3.0, 3.0), (-3.0, 3.0))
RUN_AHEAD_BYTES = 128 * 2**20  # how much the engine may compute ahead of the animation (at most 4,096 frames)
START_TIP = "Start point. Or click on the map: every trajectory restarts there."
MAX_CUSTOM_ENTRIES = 6
EXPR_ROLE = Qt.UserRole + 1
DOMAIN_ROLE = Qt.UserRole + 2
GLYPH_SCALES = (("auto", None), ("×1 (true)", 1.0), ("×10", 10.0), ("×100", 100.0), ("×0.1", 0.1),
                ("×0.01", 0.01))


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


def contour_paths(levels_img: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                  n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """All iso-lines of the log-level image as one NaN-separated polyline in function coordinates.

    Where the function is not finite nothing is drawn: iso-lines are cut next to masked cells, so the
    fill value used there does not draw a false contour around the hole.
    """
    finite_mask = np.isfinite(levels_img)
    finite = levels_img[finite_mask]
    if finite.size == 0:
        return np.zeros(0), np.zeros(0)
    data = np.where(finite_mask, levels_img, finite.max())
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
    cx, cy = np.concatenate(px), np.concatenate(py)
    if not finite_mask.all():
        bad = ~finite_mask
        grown = bad.copy()  # cells next to a masked cell count as masked
        grown[1:] |= bad[:-1]
        grown[:-1] |= bad[1:]
        grown[:, 1:] |= bad[:, :-1]
        grown[:, :-1] |= bad[:, 1:]
        with np.errstate(invalid="ignore"):
            ix = np.clip(np.rint((cx - xs[0]) / dx), 0, len(xs) - 1)
            iy = np.clip(np.rint((cy - ys[0]) / dy), 0, len(ys) - 1)
        ok = np.isfinite(ix) & np.isfinite(iy)
        hit = np.zeros(len(cx), dtype=bool)
        hit[ok] = grown[iy[ok].astype(np.int64), ix[ok].astype(np.int64)]
        cx[hit] = np.nan
        cy[hit] = np.nan
    return cx, cy


MAX_DRAWN_HEADS = 10_000  # per optimiser: a scatter of more points costs more than a frame and shows no more


@functools.lru_cache(maxsize=4)
def drawn_subset(n: int) -> np.ndarray:
    """Which of n trajectories the map draws a head for: MAX_DRAWN_HEADS of them, evenly spread over the
    start order (a grid's rows, a disc's rings), the first and the last included."""
    return np.unique(np.linspace(0, n - 1, MAX_DRAWN_HEADS).round().astype(np.int64))


def move_spots(item: pg.ScatterPlotItem, x: np.ndarray, y: np.ndarray) -> None:
    """New positions for the same number of spots of unchanged style, without ``setData``.

    ``setData`` rebuilds every spot and looks each one's style up in the symbol atlas (a Python loop per
    point: about 2 ms for 1,000 heads); when only positions change, writing them in place and doing what
    ``addPoints`` does after (geometry, bounds, cached picture) draws the same.
    """
    item.data["x"] = x
    item.data["y"] = y
    item.prepareGeometryChange()
    item.informViewBoundsChanged()
    item.bounds = [None, None]
    item.invalidate()
    item.sigPlotChanged.emit(item)


def _expression_message(exc: ConfigError, text: str) -> str:
    """A parser error with the offending part of the text quoted."""
    message = f"custom f(x, y): {exc}"
    column = getattr(exc, "column", None)
    if column and getattr(exc, "line", None) in (None, 1):
        snippet = text[column - 1: column + 11].strip() or "(end of text)"
        message += f", at \u201c{snippet}\u201d"
    return message


class LandscapePanel(QWidget):
    message = Signal(str)  # problems to show the user (never a traceback)
    error = Signal(str, str)  # engine failure: message, details
    stats = Signal(int, float)  # step, steps per second
    inputs_changed = Signal()  # an edit was accepted (the window then asks input_problem() what is left)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.worker: GeneratorWorker | None = None
        self.history: RaceHistory | None = None
        self.tracker: ConvergenceTracker | None = None
        self.run_configs: list[tuple[int, OptimizerConfig]] = []
        self.playing = False
        self.function: TestFunction = FUNCTIONS.get("rosenbrock")
        self.start_point: tuple[float, float] | None = None
        self.starts_config = StartsConfig()  # clouds of starts: the Run group's controls, or set_config
        self.batch_size = 0
        self.last_parts: dict[int, list[StepPart]] = {}  # step-by-step mode: run index j -> parts
        self._custom_expression = DEFAULT_CUSTOM
        self._side_due = 0.0
        self._curves_due = 0.0
        self._build_controls()
        self._build_plots()
        self._build_layout()
        self.timer = QTimer(self)
        self.timer.setInterval(16)  # ~60 Hz: draw whatever the worker produced since the last frame
        self.timer.timeout.connect(self._tick)
        self.timer.start()
        self.optimizers.set_total_steps(self.steps_spin.value())  # schedule previews span the run
        for name, params in DEFAULT_RACE:
            self.optimizers.add(name, params)
        self.optimizers.changed.connect(self._settings_changed)
        self.optimizers.changed.connect(self.inputs_changed)
        self.optimizers.invalid.connect(self.message)
        self.optimizers.list.currentRowChanged.connect(self._selection_changed)
        self._function_changed()

    # ---- construction ----
    def _build_controls(self) -> None:
        self.function_combo = QComboBox()
        for name, fn in FUNCTIONS.items():
            self.function_combo.addItem(fn.label, name)
            self.function_combo.setItemData(self.function_combo.count() - 1,
                                            f"{fn.formula}\n{fn.description}", Qt.ToolTipRole)
        self.function_combo.insertSeparator(self.function_combo.count())
        self.function_combo.addItem("New custom f(x, y)...", "custom")
        self.function_combo.setItemData(self.function_combo.count() - 1,
                                        "Type your own f(x, y); once drawn it is listed here as "
                                        "\u201cCustom: ...\u201d.",
                                        Qt.ToolTipRole)
        self.function_combo.setCurrentIndex(self.function_combo.findData("rosenbrock"))
        # A long custom expression in the list must not widen the controls column.
        self.function_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.function_combo.setMinimumContentsLength(16)
        self.function_combo.setToolTip("The landscape the optimisers descend.")
        self.custom_edit = QLineEdit(DEFAULT_CUSTOM)
        self.custom_edit.setToolTip("Type f(x, y): numbers, x, y, pi, e, + - * / **, and sin cos tan exp log sqrt "
                                    "abs tanh min max ... Press Enter to draw it. Gradients come from autograd; "
                                    "where f is not finite the map is blank and a trajectory entering it diverges.")
        self.domain_edits = [QLineEdit(format_number(v)) for pair in DEFAULT_DOMAIN for v in pair]
        for w, tip in zip(self.domain_edits, ("x from", "x to", "y from", "y to")):
            w.setToolTip(f"Domain of the custom function: {tip}. Press Enter to redraw.")
            w.setMaximumWidth(70)
            w.editingFinished.connect(self._domain_edited)
        self.domain_row = QWidget()
        dl = QHBoxLayout(self.domain_row)
        dl.setContentsMargins(0, 0, 0, 0)
        for text, w in (("x", self.domain_edits[0]), ("to", self.domain_edits[1]), ("  y", self.domain_edits[2]),
                        ("to", self.domain_edits[3])):
            dl.addWidget(QLabel(text))
            dl.addWidget(w)
        dl.addStretch(1)
        self.function_form_holder = QVBoxLayout()
        self.function_form: ParamForm | None = None
        self.formula_label = QLabel()
        self.formula_label.setTextFormat(Qt.RichText)
        self.formula_label.setWordWrap(True)
        self.start_x = QLineEdit()
        self.start_y = QLineEdit()
        for w in (self.start_x, self.start_y):
            w.setToolTip(START_TIP)
            w.editingFinished.connect(self._start_edited)
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 10_000_000)
        self.steps_spin.setValue(1000)
        self.steps_spin.setToolTip("Number of optimiser steps in the run.")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("Seed for gradient noise and random start clouds: same seed, same run.")
        self.starts_kind = QComboBox()
        for text, kind in (("single point", "point"), ("grid over the domain", "grid"),
                           ("disc around the start", "disc"), ("random in the domain", "random")):
            self.starts_kind.addItem(text, kind)
        self.starts_kind.setToolTip("Where trajectories start: one point, or a cloud of starts. Every optimiser "
                                    "runs the whole cloud; each particle is its own run (heads with fading trails, "
                                    "mean curves). Random clouds come from the seed.")
        self.starts_count = QSpinBox()
        self.starts_count.setRange(1, 100_000)
        self.starts_count.setValue(100)
        self.starts_count.setToolTip("Number of starts in the cloud (1 to 100,000). Every one is stepped and "
                                     f"counted; the map draws {MAX_DRAWN_HEADS:,} of them per optimiser, evenly "
                                     "spread. Optimisers that couple coordinates (L-BFGS) run a single start only.")
        self.starts_radius = QDoubleSpinBox()
        self.starts_radius.setDecimals(4)
        self.starts_radius.setRange(1e-4, 1e6)
        self.starts_radius.setValue(0.5)
        self.starts_radius.setToolTip("Radius of the disc of starts around the start point.")
        self.batch_spin = batch_size_spin("Data-set objectives only: 0 (full batch) steps on the mean over all the "
                                          "data; otherwise every optimiser except GD (and L-BFGS) steps on seeded "
                                          "mini-batches of this size, the same batch for all. The curves show the "
                                          "full-data loss.")
        self.starts_kind.currentIndexChanged.connect(self._starts_edited)
        self.starts_count.valueChanged.connect(self._starts_edited)
        self.starts_radius.valueChanged.connect(self._starts_edited)
        self.batch_spin.valueChanged.connect(self._batch_edited)
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
        self.speed.setMinimumWidth(60)
        self.status_label = QLabel()
        # Long statuses are cut, never widen the window; the tooltip has them whole.
        self.status_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self._exact_steps_per_frame: int | None = None  # a session's number, until the slider moves
        self.speed.valueChanged.connect(self._speed_moved)
        self._update_speed_label()

        # glyph toggles: the icons double as the legend of the map's glyphs
        self.glyph_checks: dict[str, QCheckBox] = {}
        for kind in GLYPH_KINDS:
            cb = QCheckBox(kind.label)
            cb.setIcon(swatch_icon(kind.colour, kind.ellipse))
            cb.setToolTip(kind.help)
            cb.toggled.connect(partial(self._glyph_toggled, kind.key))
            self.glyph_checks[kind.key] = cb
        self.explain_check = QCheckBox("step by step")
        self.explain_check.setToolTip(
            "Step-by-step mode: each Step (.) shows one update split into its parts, in the order torch applies "
            "them (gradient, carried moment or velocity, weight decay), drawn head to tail from the point before "
            "the update; every part already carries the optimiser's scaling. The first Step also takes the first "
            "update. The parts and their coefficients are listed in the State tab.")
        self.explain_check.toggled.connect(self._explain_toggled)
        self.glyph_scale = QComboBox()
        for text, value in GLYPH_SCALES:
            self.glyph_scale.addItem(text, value)
        self.glyph_scale.setToolTip("Arrow lengths: auto picks a power of ten per group (gradients; steps) so the "
                                    "longest arrow is readable. ×1 draws steps at their true length.")
        self.glyph_scale.currentIndexChanged.connect(self._glyph_scale_changed)

        self.function_combo.currentIndexChanged.connect(self._function_changed)
        self.custom_edit.returnPressed.connect(self._apply_custom)
        self.steps_spin.valueChanged.connect(self._steps_changed)
        self.seed_spin.valueChanged.connect(self._settings_changed)
        self.play_button.clicked.connect(self.toggle_play)
        self.step_button.clicked.connect(self.single_step)
        self.reset_button.clicked.connect(self.reset)

    def _build_plots(self) -> None:
        self.map_plot = pg.PlotWidget()
        use_own_export_menu(self.map_plot)
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
        self.legend.setCacheMode(self.legend.CacheMode.DeviceCoordinateCache)  # repainted under every frame
        self.map_plot.scene().sigMouseClicked.connect(self._map_clicked)
        self.glyphs = GlyphLayer(self.map_plot)
        # Blocks of 4 steps, one more than TRAIL_STEPS needs: the newest block fills up as steps come, so
        # with one extra the trail spans TRAIL_STEPS to TRAIL_STEPS + 3 steps, never fewer.
        self.trail_layer = TrailLayer(self.map_plot.getPlotItem().vb, TRAIL_BANDS + 1, TRAIL_STEPS // TRAIL_BANDS)
        self.trail_layer.setZValue(10)
        self.map_plot.addItem(self.trail_layer, ignoreBounds=True)
        self.path_layer = PathLayer(self.map_plot.getPlotItem().vb, width=2)
        self.path_layer.setZValue(10)
        self.map_plot.addItem(self.path_layer, ignoreBounds=True)

        self.loss_plot = make_plot(left="loss f(x, y) - f*", bottom="step", log_y=True)
        self.grad_plot = make_plot(left="gradient norm", bottom="step", log_y=True)
        self.lr_plot = make_plot(left="learning rate", bottom="step", log_y=True)
        for plot in (self.loss_plot, self.grad_plot, self.lr_plot):
            thin_log_labels(plot.getAxis("left"))
        self.curve_ranges = [GrowingRanges(p, log_y=True) for p in (self.loss_plot, self.grad_plot, self.lr_plot)]
        self.curve_sets = [CurveSet() for _ in range(3)]  # loss, gradient norm, rate: every optimiser's curve
        for plot, curves in zip((self.loss_plot, self.grad_plot, self.lr_plot), self.curve_sets):
            plot.addItem(curves)
        for plot in (self.map_plot, self.loss_plot, self.grad_plot, self.lr_plot):
            cache_axes(plot)
        # The colour map and its contours change only with the function or the view: Qt keeps them as a
        # pixmap, so a frame blits them instead of scaling the image and stroking every iso-line.
        for item in (self.image, self.contours):
            item.setCacheMode(item.CacheMode.DeviceCoordinateCache)
        # No setXLink between these: with clip-to-view and auto-downsampling, linked x ranges ping-pong
        # between the views once a curve has more points than pixels, and painting never finishes.
        self.lr_cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.lr_plot.addItem(self.lr_cursor)
        self.paths: list = []  # one start point: what the path layer draws of each optimiser (getData)
        self.heads: list[pg.ScatterPlotItem] = []
        self.cloud = False  # this run's items are a cloud's: heads and the trail layer
        self._legend_texts: dict[int, str] = {}
        # Per optimiser, the styles its heads were last set with (how many points, how many drawn diverged):
        # while they hold, the heads are only moved in place (see move_spots).
        self._heads_style: dict[int, tuple[int, int]] = {}
        self.loss_curves: list = []  # per optimiser: its curve in the plot's CurveSet (setData, getData)
        self.grad_curves: list = []
        self.lr_curves: list = []

        self.state_panel = StatePanel()
        self.state_panel.trajectory_changed.connect(lambda _: self.update_side_panels(force=True))
        self.results = ResultsTable()
        self.decay_plot = DecayPlot()
        self.decay_plot.compare_requested.connect(self.race_adam_l2_beside_adamw)

    def _build_layout(self) -> None:
        controls = QWidget()
        col = QVBoxLayout(controls)
        fbox = QGroupBox("Function")
        fl = QVBoxLayout(fbox)
        fl.addWidget(self.function_combo)
        fl.addWidget(self.custom_edit)
        fl.addWidget(self.domain_row)
        fl.addLayout(self.function_form_holder)
        fl.addWidget(self.formula_label)
        col.addWidget(fbox)
        rbox = QGroupBox("Run")
        rl = QFormLayout(rbox)
        start_row = QHBoxLayout()
        start_row.addWidget(self.start_x)
        start_row.addWidget(self.start_y)
        self.start_label = QLabel("start (x, y)")
        rl.addRow(self.start_label, start_row)
        rl.addRow("steps", self.steps_spin)
        rl.addRow("seed", self.seed_spin)
        rl.addRow("starts", self.starts_kind)
        rl.addRow("count", self.starts_count)
        rl.addRow("disc radius", self.starts_radius)
        rl.addRow("batch size", self.batch_spin)
        self.run_form = rl
        self._show_starts()
        self._show_batch()
        col.addWidget(rbox)
        col.addWidget(self.optimizers)
        col.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(340)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)

        transport = QHBoxLayout()
        for w in (self.play_button, self.step_button, self.explain_check, self.reset_button):
            transport.addWidget(w)
        transport.addWidget(QLabel("speed"))
        transport.addWidget(self.speed, 1)
        transport.addWidget(self.speed_label)
        glyph_row = QHBoxLayout()
        glyph_row.setSpacing(6)
        for cb in self.glyph_checks.values():
            glyph_row.addWidget(cb)
        glyph_row.addWidget(self.glyph_scale)
        glyph_row.addStretch(1)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addLayout(transport)
        cl.addLayout(glyph_row)
        cl.addWidget(self.map_plot, 1)
        cl.addWidget(self.status_label)

        curves = QSplitter(Qt.Vertical)
        for plot in (self.loss_plot, self.grad_plot, self.lr_plot):
            curves.addWidget(plot)
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(curves, "Curves")
        self.side_tabs.addTab(self.state_panel, "State")
        self.side_tabs.addTab(self.results, "Results")
        self.side_tabs.addTab(self.decay_plot, "Weight decay")
        self.side_tabs.setTabToolTip(1, "The selected optimiser's hyperparameters, optimizer.state buffers, "
                                        "update rule with numbers, and its schedule's live counters.")
        self.side_tabs.setTabToolTip(2, "Status per trajectory: converged, diverged, oscillating or stalled, "
                                        "with the step it happened at.")
        self.side_tabs.setTabToolTip(3, "Per-axis effective weight decay against step: Adam + L2 beside AdamW.")
        self.side_tabs.currentChanged.connect(lambda _: (self._draw_curves(), self.update_side_panels(force=True)))
        self.splitter = QSplitter(Qt.Horizontal)
        self.splitter.addWidget(scroll)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(self.side_tabs)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setStretchFactor(2, 2)
        self.splitter.setSizes([360, 680, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)

    # ---- settings ----
    def steps_per_frame(self) -> int:
        if self._exact_steps_per_frame is not None:
            return self._exact_steps_per_frame
        return max(1, int(round(10 ** (3 * self.speed.value() / 100))))

    def set_steps_per_frame(self, n: int) -> None:
        """A session's speed: the slider as near as it goes, the number itself kept until the slider moves."""
        self.speed.blockSignals(True)
        self.speed.setValue(max(0, min(100, round(100 * math.log10(max(n, 1)) / 3))))
        self.speed.blockSignals(False)
        self._exact_steps_per_frame = int(n)
        self._update_speed_label()

    def _speed_moved(self) -> None:
        self._exact_steps_per_frame = None
        self._update_speed_label()

    def _update_speed_label(self) -> None:
        self.speed_label.setText(f"{self.steps_per_frame()} steps/frame")

    def _set_custom_visible(self, on: bool) -> None:
        self.custom_edit.setVisible(on)
        self.domain_row.setVisible(on)

    def _function_changed(self) -> None:
        """The function combo moved: a built-in, a listed custom function, or a new one."""
        index = self.function_combo.currentIndex()
        name = self.function_combo.currentData()
        self._set_custom_visible(name == "custom")
        if name == "custom":
            expr = self.function_combo.itemData(index, EXPR_ROLE)
            domain = self.function_combo.itemData(index, DOMAIN_ROLE)
            if expr is not None:
                self.custom_edit.setText(expr)
            if domain is not None:
                self._show_domain(domain)
            self._apply_custom()
            return
        try:
            fn = FUNCTIONS.get(name)
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        self._set_function(fn)

    def _domain(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The custom domain as typed; a ConfigError names the field when it is not acceptable."""
        values = []
        for w, field in zip(self.domain_edits, ("x from", "x to", "y from", "y to")):
            text = w.text().strip()
            try:
                values.append(float(text))
            except ValueError:
                raise ConfigError(f"custom domain {field}", f"expected a number, got {text!r}") from None
        return check_domain(((values[0], values[1]), (values[2], values[3])), "custom domain")

    def _show_domain(self, domain) -> None:
        for w, v in zip(self.domain_edits, (domain[0][0], domain[0][1], domain[1][0], domain[1][1])):
            w.setText(format_number(float(v)))

    def _domain_edited(self) -> None:
        try:
            domain = self._domain()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        if self.function_combo.currentData() == "custom" and (self.function.name != "custom"
                                                              or domain != self.function.domain):
            self._apply_custom()
        else:
            self.inputs_changed.emit()

    def _apply_custom(self) -> bool:
        """Parse the typed f(x, y) on the typed domain and draw it; a refusal names the offending part."""
        text = self.custom_edit.text()
        try:
            domain = self._domain()
            from engine.expression import make_custom_function
            fn = make_custom_function(text, domain=domain)
        except ConfigError as exc:
            msg = _expression_message(exc, text) if exc.field == "expression" else str(exc)
            self.custom_edit.setStyleSheet("QLineEdit { border: 1px solid #D55E00; }" if exc.field == "expression"
                                           else "")
            self.custom_edit.setToolTip(msg)
            self.message.emit(msg)
            return False
        self.custom_edit.setStyleSheet("")
        self.custom_edit.setToolTip("Type f(x, y) and press Enter to draw it.")
        self._custom_expression = text.strip()
        index = self._custom_entry(text.strip(), fn.domain)
        self.function_combo.blockSignals(True)
        self.function_combo.setCurrentIndex(index)
        self.function_combo.blockSignals(False)
        self._set_custom_visible(True)
        self._set_function(fn)
        return True

    def _custom_entry(self, text: str, domain) -> int:
        """The combo index of "Custom: text" (added above "New custom" if new), most recent first."""
        combo = self.function_combo
        domain = tuple(tuple(float(v) for v in pair) for pair in domain)
        for i in range(combo.count()):
            if combo.itemData(i, EXPR_ROLE) == text:
                combo.setItemData(i, domain, DOMAIN_ROLE)
                return i
        first = combo.findData("custom")  # the first custom item: listed entries, then "New custom"
        combo.blockSignals(True)
        combo.insertItem(first, f"Custom: {text}", "custom")
        combo.setItemData(first, text, EXPR_ROLE)
        combo.setItemData(first, domain, DOMAIN_ROLE)
        combo.setItemData(first, f"f(x, y) = {text}", Qt.ToolTipRole)
        listed = [i for i in range(combo.count()) if combo.itemData(i, EXPR_ROLE) is not None]
        for i in reversed(listed[MAX_CUSTOM_ENTRIES:]):
            combo.removeItem(i)
        combo.blockSignals(False)
        return first

    def _formula_html(self) -> str:
        """The function's formula as rich text, named by its own axes (f(w, b) for linear regression)."""
        fn = self.function
        if fn.name == "custom":  # what the user typed, as typed: not LaTeX
            return f"f(x, y) = {html.escape(fn.formula)}"
        return f"f({', '.join(self.axis_names())}) = {latex_to_html(fn.formula)}"

    def _label_curves(self, n_starts: int) -> None:
        """A cloud's curves are means over its trajectories (a few exploding ones can dominate them): say so."""
        bottom, left = self.axis_names()
        mean = "mean " if n_starts > 1 else ""
        self.loss_plot.setLabel("left", f"{mean}loss f({bottom}, {left}) - f*")
        self.grad_plot.setLabel("left", f"{mean}gradient norm")

    def axis_names(self) -> tuple[str, str]:
        """The map's axes: the two parameters of a data-set objective (w, b), else x and y."""
        data = data_objective_of(self.function)
        return tuple(label.split(" ")[0] for label in data.axis_labels) if data is not None else ("x", "y")

    def _set_function(self, fn: TestFunction) -> None:
        self.function = fn
        if self.function_form is not None:
            self.function_form.setParent(None)
            self.function_form.deleteLater()
        self.function_form = ParamForm(fn.params, f"function {fn.name}")
        self.function_form.changed.connect(self._function_params_changed)
        self.function_form.invalid.connect(self.message)
        self.function_form_holder.addWidget(self.function_form)
        self.formula_label.setText(self._formula_html())
        self.formula_label.setToolTip(fn.description)
        bottom, left = self.axis_names()
        self.map_plot.setLabel("bottom", bottom)
        self.map_plot.setLabel("left", left)
        self.start_label.setText(f"start ({bottom}, {left})")
        self._label_curves(1)
        self.start_point = fn.start
        self._show_start()
        self._show_batch()
        self._draw_function()
        self.reset()
        self.inputs_changed.emit()

    def _function_params_changed(self) -> None:
        self._draw_function()
        self.reset()
        self.inputs_changed.emit()

    def _function_params(self) -> dict[str, Any]:
        return self.function_form.values() if self.function_form is not None else {}

    def _draw_function(self) -> None:
        try:
            params = self._function_params()
        except ConfigError as exc:
            self.message.emit(str(exc))
            return
        with np.errstate(all="ignore"):
            xs, ys, z = self.function.grid(GRID, GRID, params)
        levels = log_levels(z)
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        if np.isfinite(levels).any():
            self.image.setImage(levels, autoLevels=False,
                                levels=(float(np.nanmin(levels)), float(np.nanmax(levels)) + 1e-12))
        else:
            self.image.clear()
        self.image.setRect(QRectF(xs[0] - dx / 2, ys[0] - dy / 2, dx * len(xs), dy * len(ys)))
        cx, cy = contour_paths(levels, xs, ys, CONTOUR_LEVELS)
        self.contours.setData(cx, cy)
        minima = np.array(self.function.minima_for(params), dtype=float).reshape(-1, 2)
        self.minima_item.setData(minima[:, 0], minima[:, 1])
        (x0, x1), (y0, y1) = self.function.domain
        self.map_plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        finite = np.isfinite(z)
        # f* for the loss curves (f - f*): exact where known, else the least value sampled on the map
        known = known_minimum_value(self.function, params)
        self._minimum_value = known if known is not None else float(np.nanmin(z[finite])) if finite.any() else 0.0
        if not finite.all() and finite.any():
            share = 1 - finite.mean()
            self.formula_label.setText(f"{self._formula_html()}<br>({share:.0%} of the domain is not "
                                       "finite: left blank; a trajectory entering it is marked diverged)")

    def _show_start(self) -> None:
        x, y = self.start_point
        for w, v in ((self.start_x, x), (self.start_y, y)):
            w.setText(format_number(v))
            w.setStyleSheet("")
            w.setToolTip(START_TIP)
        self.start_item.setData([x], [y])

    def _typed_start(self) -> tuple[float, float]:
        """The start as typed; a ConfigError names the field when it is not two finite numbers."""
        x_text, y_text = self.start_x.text().strip(), self.start_y.text().strip()
        try:
            x, y = float(x_text), float(y_text)
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError
        except ValueError:
            raise ConfigError("start", f"expected two finite numbers, got {x_text!r}, {y_text!r}") from None
        return x, y

    def _start_edited(self) -> None:
        # A refused start keeps its text, marked like any other refused field, until it is fixed.
        try:
            x, y = self._typed_start()
        except ConfigError as exc:
            for w in (self.start_x, self.start_y):
                w.setStyleSheet(_BAD_STYLE)
                w.setToolTip(str(exc))
            self.message.emit(str(exc))
            return
        for w in (self.start_x, self.start_y):
            w.setStyleSheet("")
            w.setToolTip(START_TIP)
        if (x, y) != self.start_point:
            self.start_point = (x, y)
            self._show_start()
            self.reset()
        self.inputs_changed.emit()

    def input_problem(self) -> str | None:
        """The first thing typed into this panel that is still refused, in words; None when all is acceptable.

        The window keeps a refusal on the status bar until this says nothing is left, so fixing one field
        does not hide another field's still-standing refusal.
        """
        try:
            self._typed_start()
            if self.function_combo.currentData() == "custom":
                domain = self._domain()
                text = self.custom_edit.text().strip()
                if text != self._custom_expression or self.function.name != "custom":
                    from engine.expression import make_custom_function
                    try:
                        make_custom_function(text, domain=domain)
                    except ConfigError as exc:
                        return _expression_message(exc, text) if exc.field == "expression" else str(exc)
            cfg = self.config()
            cfg.validate()
            for oc in cfg.optimizers:
                check_optimizer_schedule(oc, cfg.steps, f"optimizer {oc.label or oc.name}.")
        except ConfigError as exc:
            return str(exc)
        return None

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

    # ---- clouds of starts and mini-batches ----
    def _starts_edited(self) -> None:
        """The cloud controls moved: they make the starts config (set_config puts one in with signals off)."""
        kind = self.starts_kind.currentData()
        count = 1 if kind == "point" else self.starts_count.value()
        self.starts_config = StartsConfig(kind, count, float(self.starts_radius.value()))
        self._show_starts()
        self._settings_changed()

    def _show_starts(self) -> None:
        """Put ``starts_config`` into the controls (signals off) and show only the ones that apply."""
        s = self.starts_config
        widgets = (self.starts_kind, self.starts_count, self.starts_radius)
        for w in widgets:
            w.blockSignals(True)
        self.starts_kind.setCurrentIndex(max(0, self.starts_kind.findData(s.kind)))
        if s.kind != "point":
            self.starts_count.setValue(min(s.count, self.starts_count.maximum()))
        self.starts_radius.setValue(s.radius)
        for w in widgets:
            w.blockSignals(False)
        if hasattr(self, "run_form"):
            self.run_form.setRowVisible(self.starts_count, s.kind != "point")
            self.run_form.setRowVisible(self.starts_radius, s.kind == "disc")

    def _is_data_objective(self) -> bool:
        return getattr(self.function, "data", None) is not None

    def _batch_edited(self) -> None:
        self.batch_size = self.batch_spin.value()
        self.optimizers.set_on_minibatch(self._is_data_objective() and self.batch_size > 0)
        self._settings_changed()

    def _show_batch(self) -> None:
        """The batch size row is there for data-set objectives only (others have no mini-batches)."""
        self.batch_spin.blockSignals(True)
        self.batch_spin.setValue(self.batch_size)
        self.batch_spin.blockSignals(False)
        on = self._is_data_objective()
        self.batch_spin.setEnabled(on)
        if hasattr(self, "run_form"):
            self.run_form.setRowVisible(self.batch_spin, on)
        self.optimizers.set_on_minibatch(on and self.batch_size > 0)

    def _steps_changed(self) -> None:
        self.optimizers.set_total_steps(self.steps_spin.value())
        self._settings_changed()

    def _settings_changed(self) -> None:
        # A running race keeps its settings; the next reset or play picks up the new ones.
        if self.worker is None:
            self._clear_items()

    def config(self) -> LandscapeConfig:
        """The race as configured; raises ConfigError naming the field when something is not acceptable.

        The function is the one drawn on the map (a custom text that failed to parse is not used).
        """
        configs = self.optimizers.enabled_configs()
        custom = self.function.name == "custom"
        try:
            domain = self._domain()
        except ConfigError:
            domain = self.function.domain if custom else DEFAULT_DOMAIN
        return LandscapeConfig(
            function="custom" if custom else self.function.name, function_params=self._function_params(),
            custom_expression=self._custom_expression if custom else "",
            custom_domain=self.function.domain if custom else domain,
            start=self.start_point, starts=self.starts_config, steps=self.steps_spin.value(),
            seed=self.seed_spin.value(), optimizers=tuple(c for _, c in configs),
            batch_size=self.batch_size if self._is_data_objective() else 0)

    def set_config(self, cfg: LandscapeConfig) -> None:
        """Put a configuration into the controls (for sessions): function, domain, start, steps, seed, optimisers.

        Validated first, so a bad one changes nothing and raises ConfigError naming the field. The race
        is reset; ``config()`` afterwards returns an equal configuration.
        """
        cfg.validate()
        if len(cfg.optimizers) > MAX_OPTIMIZERS:
            raise ConfigError("optimizers", f"at most {MAX_OPTIMIZERS} race at once, got {len(cfg.optimizers)}")
        for i, oc in enumerate(cfg.optimizers):
            check_optimizer_schedule(oc, cfg.steps, f"optimizers[{i}].")
        self.reset()
        same_function = (cfg.function != "custom" and self.function.name == cfg.function
                         and self.function_combo.currentData() == cfg.function)
        if cfg.function == "custom":
            self.custom_edit.setText(cfg.custom_expression)
            self._show_domain(cfg.custom_domain)
            if not self._apply_custom():
                raise ConfigError("custom_expression", "could not be drawn")
        elif not same_function:
            self._show_domain(cfg.custom_domain)
            self.function_combo.blockSignals(True)
            self.function_combo.setCurrentIndex(self.function_combo.findData(cfg.function))
            self.function_combo.blockSignals(False)
            self._set_custom_visible(False)
            self._set_function(FUNCTIONS.get(cfg.function))
        else:
            self._show_domain(cfg.custom_domain)
        drawn = self._function_params()
        self.function_form.set_values(cfg.function_params)
        if self._function_params() != drawn:
            self._draw_function()
        self.start_point = tuple(float(v) for v in cfg.start) if cfg.start is not None else self.function.start
        self._show_start()
        self.starts_config = cfg.starts
        self.batch_size = cfg.batch_size
        self._show_starts()
        self._show_batch()
        for spin, value in ((self.seed_spin, cfg.seed), (self.steps_spin, cfg.steps)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self.optimizers.set_configs(cfg.optimizers, total_steps=cfg.steps)
        self.reset()

    def race_adam_l2_beside_adamw(self) -> None:
        """Add Adam + L2 and AdamW with matching lr and weight decay (those missing), and start afresh."""
        present = {e.name for e in self.optimizers.editors}
        for name in ("adam_l2", "adamw"):
            if name not in present:
                self.optimizers.add(name, {"lr": 0.05, "weight_decay": 0.1})
        self.reset()
        self.side_tabs.setCurrentWidget(self.decay_plot)

    # ---- transport ----
    def _ensure_worker(self) -> bool:
        if self.worker is not None:
            return True
        try:
            cfg = self.config()
            cfg.validate()
            for i, oc in enumerate(cfg.optimizers):
                check_optimizer_schedule(oc, cfg.steps, f"optimizer {oc.label or oc.name}.")
        except ConfigError as exc:
            self.message.emit(str(exc))
            return False
        self.run_configs = self.optimizers.enabled_configs()
        n = len(start_points(cfg, resolve_function(cfg)))
        self._make_items(len(self.run_configs), n)
        self._label_curves(n)
        self._drop_history()
        self.history = RaceHistory(len(cfg.optimizers), n)
        self.tracker = ConvergenceTracker.for_run(cfg)
        self.decay_plot.reset(self.run_configs)
        self.results.clear()
        self.state_panel.set_trajectories(n)
        self.last_parts = {}
        self.worker = GeneratorWorker(lambda: run_landscape(cfg), capacity=4096, max_bytes=RUN_AHEAD_BYTES,
                                      sizeof=lambda frame: frame.nbytes)
        self.worker.failed.connect(self._worker_failed)
        self.worker.start()
        return True

    def play(self) -> None:
        if self._ensure_worker():
            self.playing = True
            self.play_button.setText("Pause")

    def pause(self) -> None:
        was = self.playing
        self.playing = False
        self.play_button.setText("Play")
        if was:
            self._draw_curves()  # the last frames may have been between two curve refreshes
            self.update_side_panels(force=True)

    def toggle_play(self) -> None:
        self.pause() if self.playing else self.play()

    def single_step(self) -> None:
        self.pause()
        if self._ensure_worker():
            # Step-by-step mode: the first press also takes the first update, so there is one to show.
            first = self.history is None or len(self.history.steps) == 0
            n = 2 if self.explain_check.isChecked() and first else 1
            self.worker.wait_for_records(n)
            self._consume(n, explain=True)

    def reset(self) -> None:
        self.pause()
        had_run = self.worker is not None or self.history is not None
        self.stop_worker()
        self._drop_history()
        if had_run:
            release_freed_memory()
        self.tracker = None
        self.last_parts = {}
        self._clear_items()
        self.status_label.setText("")
        self.state_panel.clear()
        self.results.clear()

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def _worker_failed(self, message: str, details: str) -> None:
        self.pause()
        self.error.emit(f"The run stopped: {message}", details)

    def _selection_changed(self, _row: int = -1) -> None:
        if self.explain_check.isChecked() and self.history is not None:
            self._update_parts(animate=False)
            self._update_glyphs()
        self.update_side_panels(force=True)

    # ---- glyphs ----
    def _glyph_toggled(self, key: str, on: bool) -> None:
        self.glyphs.enabled[key] = on
        self._update_glyphs()

    def _glyph_scale_changed(self) -> None:
        self.glyphs.set_fixed_scale(self.glyph_scale.currentData())

    def _explain_toggled(self, on: bool) -> None:
        if on:
            self._update_parts(animate=False)
            self.side_tabs.setCurrentWidget(self.state_panel)
        else:
            self.last_parts = {}
            self.glyphs.clear_parts()
        self.update_side_panels(force=True)

    def _glyph_values(self) -> tuple[np.ndarray, dict[str, np.ndarray | None]]:
        """Heads and glyph vectors of every optimiser (first MAX_GLYPH_TRAJECTORIES trajectories)."""
        h = self.history
        last = h.last
        n_show = min(h.n, MAX_GLYPH_TRAJECTORIES)
        heads, values = [], {k.key: [] for k in GLYPH_KINDS}
        for j, (i, cfg) in enumerate(self.run_configs):
            xy = np.asarray(last.xy[j, :n_show], dtype=np.float64)
            alive = (last.diverged_at[j, :n_show] < 0)[:, None]
            nan = np.full((n_show, 2), np.nan)
            heads.append(xy)
            try:
                gl = glyphs_for_frame(last, j, cfg.name, live_params(last, j, cfg.params)) if last.state else None
            except (ValueError, KeyError):
                gl = None

            def rows(value):
                if value is None:
                    return nan
                arr = np.asarray(value, dtype=np.float64)
                return np.where(alive, arr.reshape(-1, 2)[:n_show], np.nan) if arr.ndim == 2 else nan

            values["neg_grad"].append(rows(-np.asarray(last.grad[j])))
            step = xy - h.prev.xy[j, :n_show] if h.prev is not None and h.prev.step == last.step - 1 else nan
            values["step"].append(np.where(alive, step, np.nan))
            values["momentum"].append(rows(gl.momentum if gl is not None else None))
            m_hat = gl.first_moment_hat if gl is not None else None
            values["first_moment"].append(rows(None if m_hat is None else -np.asarray(m_hat)))
            eff = gl.effective_lr if gl is not None else None
            if eff is not None:
                direction = m_hat if m_hat is not None else last.grad[j]
                norm = np.linalg.norm(np.asarray(direction, dtype=np.float64), axis=-1, keepdims=True)
                values["effective_lr"].append(rows(np.asarray(eff) * norm))
            else:
                values["effective_lr"].append(nan)
        return np.concatenate(heads), {k: np.concatenate(v) for k, v in values.items()}

    def _update_glyphs(self) -> None:
        h = self.history
        if h is None or h.last is None or not self.run_configs or not self.glyphs.any_enabled():
            self.glyphs.set_glyphs(np.zeros((0, 2)), {})
        else:
            heads, values = self._glyph_values()
            self.glyphs.set_glyphs(heads, values)

    def _update_parts(self, animate: bool) -> None:
        """Step-by-step mode: split the update that led to the newest frame into its parts, for every optimiser."""
        h = self.history
        self.last_parts = {}
        if h is None or h.last is None or h.prev is None or h.prev.step != h.last.step - 1 or not h.last.state:
            self.glyphs.set_parts([], render=False)
            return
        prev, last = h.prev, h.last
        n_show = min(h.n, MAX_GLYPH_TRAJECTORIES)
        chains = []
        selected = self.selected_run_index()
        for j, (i, cfg) in enumerate(self.run_configs):
            alive = (last.diverged_at[j, :n_show] < 0)[:, None]
            try:
                if has_decomposition(cfg.name):
                    parts = decompose_frames(prev, last, j, cfg.name, live_params(prev, j, cfg.params))
                else:
                    parts = [StepPart("step", "step (line search)", "", last.xy[j] - prev.xy[j])]
            except (ValueError, KeyError):
                continue
            self.last_parts[j] = parts
            if j == selected:  # one optimiser's chain on the map (the one in the State tab), at its own scale
                shown = [(p.key, p.label, np.where(alive, np.asarray(p.vector)[:n_show], np.nan)) for p in parts]
                chains.append((prev.xy[j, :n_show], shown))
        self.glyphs.set_parts(chains, animate=animate, render=False)

    # ---- drawing ----
    def _clear_items(self) -> None:
        for item in self.heads:
            self.map_plot.removeItem(item)
        for curves in self.curve_sets:
            curves.set_pens([])
        self.legend.clear()
        self.legend.setVisible(False)  # an empty legend is a blank box on the map
        self.paths, self.heads, self.loss_curves, self.grad_curves, self.lr_curves = [], [], [], [], []
        self.cloud = False
        self.trail_layer.source = None
        self.trail_layer.clear()
        self.path_layer.source = None
        self.path_layer.clear()
        for ranges in self.curve_ranges:
            ranges.reset()
        self._legend_texts = {}
        self._heads_style = {}
        self.glyphs.clear()

    def _make_items(self, k: int, n: int = 1) -> None:
        """Plot items are made once per run and then only fed with setData.

        One start point: a head per optimiser, and its whole path drawn by the path layer (new steps only).
        A cloud (n > 1): a scatter of heads per optimiser, and the trail layer, which draws each particle's
        new segment once per step into images of TRAIL_BANDS age bands of the last TRAIL_STEPS steps, the
        older bands fainter. The curves: one CurveSet per plot, a curve per optimiser.
        """
        self._clear_items()
        cloud = self.cloud = n > MAX_PATH_TRAJECTORIES
        colours = [colour(i) for i, _ in self.run_configs]
        if cloud:
            self.trail_layer.set_colours(colours)
            self.trail_layer.source = self._trail_source
        else:
            self.path_layer.set_colours(colours)
            self.path_layer.source = self._path_source
            self.paths = self.path_layer.tracks()
        for j, (i, cfg) in enumerate(self.run_configs):
            c = colour(i)
            if cloud:
                head = HeadsItem(symbol=symbol(i), size=7, pen=pg.mkPen("k", width=0.5), brush=pg.mkBrush(c))
            else:
                head = HeadsItem(symbol=symbol(i), size=11, pen=pg.mkPen("k", width=1), brush=pg.mkBrush(c))
            head.setZValue(20)
            self.map_plot.addItem(head)
            self.legend.addItem(head, cfg.label)
            self.legend.setVisible(True)
            self.heads.append(head)
        pens = [pg.mkPen(c, width=1) for c in colours]
        self.loss_curves, self.grad_curves, self.lr_curves = (curves.set_pens(pens) for curves in self.curve_sets)

    def _tick(self) -> None:
        if self.worker is None or not self.playing:
            return
        self._consume(self.steps_per_frame())
        if self.worker is not None and self.worker.finished_and_drained():
            self.pause()

    def _consume(self, n: int, explain: bool = False) -> None:
        frames = self.worker.take(n)
        if not frames or self.history is None:
            return
        self.history.add(frames)
        if self.history.n <= MAX_PATH_TRAJECTORIES:
            self.path_layer.extend(np.array([f.step for f in frames]), np.stack([f.xy[:, 0] for f in frames]))
        if self.tracker is not None:
            for f in frames:  # every frame, in order
                self.tracker.update(f)
        self.decay_plot.add(frames)
        if self.explain_check.isChecked():
            self._update_parts(animate=explain)
        self.redraw()
        if explain:
            self.update_side_panels(force=True)
        last = frames[-1]
        self.stats.emit(last.step, last.step / last.elapsed if last.elapsed > 0 else 0.0)

    def redraw(self) -> None:
        h = self.history
        if h is None or h.last is None:
            return
        last = h.last
        cloud = h.n > MAX_PATH_TRAJECTORIES
        for j, (i, cfg) in enumerate(self.run_configs):
            self._draw_heads(j, i, last)
        if cloud and self.cloud:
            self.trail_layer.refresh()
        elif not cloud and self.path_layer.source is not None:
            if not self.path_layer.has_pending():  # redrawn without _consume: the newest frame is what is new
                self.path_layer.extend(np.array([last.step]), last.xy[None, :, 0])
            self.path_layer.refresh(int(last.step))
        now = time.perf_counter()
        if not self.playing or now >= self._curves_due:
            # While playing, half the frames at 60 Hz skip the curves: each is a dozen setData calls and a
            # repaint of three plots, for a change of a pixel or two.
            self._curves_due = now + CURVE_REFRESH_S
            self._draw_curves()
        if self.glyphs.any_enabled() or self.glyphs.drawn or self.explain_check.isChecked():
            self._update_glyphs()  # with no glyph on or shown there is nothing to redo
        report = self.tracker.status() if self.tracker is not None else None  # one copy a frame, not one each
        statuses = [self._status_of(j, report) for j in range(len(self.run_configs))]
        text = f"step {last.step}"
        listed = [f"{cfg.label}: {st}" for (i, cfg), st in zip(self.run_configs, statuses) if st is not None]
        if listed:
            text += " | " + "; ".join(listed)
        self.status_label.setText(text)
        self.status_label.setToolTip(text)
        self._update_legend_labels(statuses)
        now = time.perf_counter()
        if now >= self._side_due:
            self.update_side_panels()

    def _trail_source(self) -> tuple[np.ndarray, int] | None:
        h = self.history
        if h is None or h.last is None or h.n <= MAX_PATH_TRAJECTORIES:
            return None
        return h.trail(), int(h.last.step)

    def _path_source(self, j: int) -> tuple[np.ndarray, np.ndarray] | None:
        h = self.history
        if h is None or h.last is None or len(h.steps) == 0:
            return None
        return h.path(j)

    def _draw_curves(self) -> None:
        """The loss, gradient-norm and rate curves; skipped while their tab is hidden (drawn when it is shown)."""
        h = self.history
        if h is None or h.last is None or self.side_tabs.currentIndex() != 0:
            return
        fmin = self._minimum_value
        extent = [[np.inf, -np.inf] for _ in self.curve_ranges]
        plots = (self.loss_plot, self.grad_plot, self.lr_plot)
        logs = [plot.getAxis("left").logMode for plot in plots]  # the user may switch log y off in the menu
        for j in range(len(self.run_configs)):
            for k, (name, store) in enumerate((("loss", self.loss_curves), ("grad_norm", self.grad_curves),
                                                ("lr", self.lr_curves))):
                x, y = h.curve(name, j)
                y = positive_or_nan(y - fmin if name == "loss" else y)
                if logs[k]:  # the curve set draws view coordinates: log10 here, as PlotDataItem would
                    y = np.log10(y)
                x, y = column_extremes(x, y, max(32, int(self.curve_ranges[k].vb.width())))
                store[j].setData(x, y)
                if len(y) and not np.isnan(y).all():
                    extent[k][0] = min(extent[k][0], float(np.nanmin(y)))
                    extent[k][1] = max(extent[k][1], float(np.nanmax(y)))
        total = max(self.steps_spin.value(), 1)
        for ranges, (lo, hi), log in zip(self.curve_ranges, extent, logs):
            ranges.log_y = log
            ranges.update(float(h.last.step), total, lo if np.isfinite(lo) else np.nan,
                          hi if np.isfinite(hi) else np.nan)
        self.lr_cursor.setValue(float(h.last.step))

    def _draw_heads(self, j: int, i: int, last: LandscapeFrame) -> None:
        head = last.xy[j]
        dead = last.diverged_at[j] >= 0
        if len(head) > MAX_DRAWN_HEADS:  # the engine steps them all; the map shows an even sample of them
            shown = drawn_subset(len(head))
            head, dead = head[shown], dead[shown]
        item = self.heads[j]
        # A diverged trajectory stays diverged, so the same count means the same points: their symbols stand.
        style = (len(head), int(dead.sum()))
        if self._heads_style.get(j) == style and len(item.data) == len(head):
            move_spots(item, head[:, 0], head[:, 1])
        elif style[1]:
            item.setData(head[:, 0], head[:, 1], symbol=np.where(dead, DIVERGED_SYMBOL, symbol(i)).tolist())
        else:  # one symbol for all: no per-point symbol list to build and look up
            item.setData(head[:, 0], head[:, 1], symbol=symbol(i))
        self._heads_style[j] = style

    def _status_of(self, j: int, report: Any = None) -> str | None:
        """Optimiser j's status in words, or None while it is simply running.

        One trajectory: "converged at step 412". A cloud: "all 1,000 converged by step 530" when every
        trajectory shares the status (by the step the last of them reached it), else the counts of those
        that are not running any more ("412/1,000 converged, 256 diverged"), so a legend never passes the
        first particle to converge off as the whole cloud.
        """
        last = self.history.last
        dead = last.diverged_at[j]
        n = dead.size
        codes = None
        if self.tracker is not None:
            report = self.tracker.status() if report is None else report
            codes, steps = report.code[j], report.step[j]
        if codes is None or (dead >= 0).all():
            if not (dead >= 0).all():
                return None
            codes, steps = np.full(n, DIVERGED_CODE), dead
        # Running but outside the function's domain: its head is not on the map, so the legend says where it is
        # (it counts as diverged only far beyond the domain, see engine.landscape.EXPLODE_WIDTHS).
        (xmin, xmax), (ymin, ymax) = self.function.domain
        xy = last.xy[j]
        with np.errstate(invalid="ignore"):
            off = (codes == RUNNING_CODE) & ~((xy[:, 0] >= xmin) & (xy[:, 0] <= xmax)
                                              & (xy[:, 1] >= ymin) & (xy[:, 1] <= ymax))
        if n == 1:
            if codes[0] == RUNNING_CODE:
                return "off the map" if off[0] else None
            return f"{STATUSES[int(codes[0])]} at step {int(steps[0])}"
        if (codes == codes[0]).all() and not off.any():
            if codes[0] == RUNNING_CODE:
                return None
            return f"all {n:,} {STATUSES[int(codes[0])]} by step {int(steps.max())}"
        counts = np.bincount(codes.astype(np.int64), minlength=len(STATUSES))
        ended = [(STATUSES[code], int(c)) for code, c in enumerate(counts) if c and code != RUNNING_CODE]
        if off.any():
            ended.append(("off the map", int(off.sum())))
        if not ended:
            return None
        parts = [f"{c:,} {name}" for name, c in ended]
        parts[0] = f"{ended[0][1]:,}/{n:,} {ended[0][0]}"
        return ", ".join(parts)

    def _status_texts(self) -> list[str]:
        out = []
        for j, (i, cfg) in enumerate(self.run_configs):
            status = self._status_of(j)
            if status is not None:
                out.append(f"{cfg.label}: {status}")
        return out

    def _update_legend_labels(self, statuses: list | None = None) -> None:
        """Legend texts with each optimiser's status; only a text that changed is set (setText relayouts)."""
        if statuses is None:
            statuses = [self._status_of(j) for j in range(len(self.run_configs))]
        for j, ((i, cfg), status) in enumerate(zip(self.run_configs, statuses)):
            label = cfg.label
            if status is not None:
                label += f" ({status})"
            if self._legend_texts.get(j) == label:
                continue
            self._legend_texts[j] = label
            for sample, text_item in self.legend.items:
                if sample.item is self.heads[j] and text_item.text != label:
                    text_item.setText(label)

    # ---- side tabs ----
    def selected_run_index(self) -> int | None:
        """Index into this run's optimisers of the one selected in the list (the first when it is not racing)."""
        if not self.run_configs:
            return None
        row = self.optimizers.list.currentRow()
        for j, (i, _) in enumerate(self.run_configs):
            if i == row:
                return j
        return 0

    def update_side_panels(self, force: bool = False) -> None:
        """Refresh the state panel, results table and decay plot (throttled while playing unless ``force``)."""
        self._side_due = time.perf_counter() + SIDE_REFRESH_S
        h = self.history
        if h is None or h.last is None:
            return
        current = self.side_tabs.currentWidget()
        if force or current is self.state_panel:
            self._update_state_panel()
        if self.tracker is not None and (force or current is self.results):
            self._update_results()
        if force or current is self.decay_plot:
            self.decay_plot.redraw()

    def _update_state_panel(self) -> None:
        h = self.history
        j = self.selected_run_index()
        if j is None or not h.last.state:
            self.state_panel.clear("No optimiser state in these frames.")
            return
        i, cfg = self.run_configs[j]
        index = min(self.state_panel.trajectory.value(), h.n - 1)
        parts = self.last_parts.get(j) if self.explain_check.isChecked() else None
        self.state_panel.show_state(cfg, colour(i), h.last, j, index=index, prev=h.prev, parts=parts)

    def _update_results(self) -> None:
        labels = [cfg.label or cfg.name for _, cfg in self.run_configs]
        colours = [colour(i) for i, _ in self.run_configs]
        colours_by_j = colours if colours else list(PALETTE)
        if self.history.n > 1:
            self.results.set_rows(summary_table(self.tracker, self.history.last, labels), colours_by_j, summary=True)
        else:
            self.results.set_rows(results_table(self.tracker, self.history.last, labels), colours_by_j)

    def shutdown(self) -> None:
        self.timer.stop()
        self.stop_worker()
        self._drop_history()

    def _drop_history(self) -> None:
        """Forget the race's history and give its temporary file back now, not whenever it is collected."""
        if self.history is not None:
            self.history.close()
        self.history = None

