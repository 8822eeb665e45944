"""What the MNIST view draws: each run's records (RunTrace) and the pages of plots that show them.

Items are made once per run when a comparison starts and fed with ``setData`` afterwards; a frame
redraws only the runs that received records, and only on the page that is showing. Long per-step
curves are thinned by ``gui.series.decimate`` (never pyqtgraph's clip-to-view / auto-downsampling).
Runs are told apart by colour (Okabe-Ito) and by marker shape: per-step curves carry a few markers
each, evaluation curves a marker at every point. Non-finite values are drawn as gaps, and a diverged
run gets an x at its last finite point.
"""
from __future__ import annotations

import functools
import html
import math
import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QTabWidget, QToolButton, QVBoxLayout,
                               QWidget)

from engine.training import EvalPoint, RunSummary, TrainConfig, smoothing_floor
from engine.training_diagnostics import (EXPLODING, HEALTHY_UPDATE_RATIO, VANISHING, confidence_histogram,
                                         gradient_flags, gradient_report, overfitting_flags)
from engine.training_process import JobEnded, JobFailed, JobStarted, StepBlock

from .mnist_runs import run_colour, run_icon, run_symbol
from .plots import make_plot
from .series import Growing, decimate, finite_or_nan, positive_or_nan

NOTE_COLOUR = "#B86E00"
MAX_DRAWN = 800  # points per drawn per-step curve (min/max pairs keep the peaks; plots are ~400 px wide)
STEP_MARKERS = 10  # markers along a per-step curve, to tell runs apart without colour
DEFAULT_SYMBOL_PEN = (200, 200, 200)  # pyqtgraph's default symbol outline
SECONDARY = ("lr", "grad", "weight", "", "", "")  # per-step plots taking turns, one per frame at most ("": none)
# Room left of step 1 on per-step plots: a curve whose repainted area reaches into the left axis (ticks
# included) repaints the axis too, every frame; 5% keeps the first point clear of it at usual plot widths.
STEP_X_PADDING = 0.05
LAYERS_INTERVAL_S = 0.1  # the Layers page redraws at most this often while a run trains
# Per-layer curves (one run's layers on the Layers page): the palette without its yellow (#F0E442, about 1.3:1
# against white) and its black (invisible on the dark theme); the symbols tell layers apart past six.
LAYER_COLOURS = ("#0072B2", "#CC79A7", "#009E73", "#E69F00", "#56B4E9", "#D55E00")
LAYER_SYMBOLS = ("o", "s", "t", "d", "p", "h", "star", "t1")
LAYER_GLYPHS = ("\u25cf", "\u25a0", "\u25bc", "\u25c6", "\u2b1f", "\u2b22", "\u2605", "\u25b2")  # the same, as text
# Robust loss axes ("fit loss axes to typical values"): each run's own top is its values' upper fence (90th
# percentile + FENCE_K x its 10-90 spread; its maximum when it has fewer than 8 values), so a short spike does
# not count; a run whose top is more than OUTLIER_RATIO x the runs' median first value (or the lowest top, if
# higher) is left out (a divergence: compared runs start from the same weights, so from the same loss); the axis reaches the highest remaining top, and at least START_HEADROOM x the runs' median first value.
FENCE_K = 1.5
OUTLIER_RATIO = 4.0
START_HEADROOM = 1.15


def _overfit_arrow() -> QPainterPath:
    """An upward arrow drawn just above its point (pyqtgraph's "arrow_up" is a sliver with its tip on the
    point, a quarter of the symbol wide): pixel y grows downward, so negative y is above."""
    pts = [(0.0, -0.5), (0.24, -0.25), (0.085, -0.25), (0.085, -0.13), (-0.085, -0.13), (-0.085, -0.25),
           (-0.24, -0.25)]
    path = QPainterPath()
    path.addPolygon(QPolygonF([pg.QtCore.QPointF(x, y) for x, y in pts]))
    path.closeSubpath()
    return path


OVERFIT_ARROW = _overfit_arrow()
OVERFIT_SIZE = 34


def layer_labels(cfg: TrainConfig) -> dict[str, str]:
    """Module path -> a readable name ("Linear 784->128", "Conv 1->16 3x3") for the run's weight layers."""
    from engine.models import MODELS

    model = MODELS.get(cfg.model).build(cfg.model_params)
    out = {}
    for name, p in model.named_parameters():
        if p.dim() <= 1:
            continue
        path = name.rsplit(".", 1)[0]
        m = model.get_submodule(path)
        if hasattr(m, "in_features"):
            out[path] = f"Linear {m.in_features}\u2192{m.out_features}"
        elif hasattr(m, "in_channels"):
            k = m.kernel_size[0] if isinstance(m.kernel_size, tuple) else m.kernel_size
            out[path] = f"Conv {m.in_channels}\u2192{m.out_channels} {k}x{k}"
        else:
            out[path] = f"{type(m).__name__} {path}"
    return out


class RunTrace:
    """One run's records, grown as they arrive."""

    def __init__(self, index: int, cfg: TrainConfig, label: str):
        self.index = index
        self.cfg = cfg
        self.label = label
        self.step = Growing((), np.float64)
        self.epoch = Growing()
        self.loss = Growing()
        self.lr = Growing()
        self.grad = Growing()
        self.elapsed = Growing()
        self.layer_names: tuple[str, ...] = ()
        self.layer_step = Growing()
        self.layer_grad: Growing | None = None
        self.layer_weight: Growing | None = None
        self.update_ratio: Growing | None = None
        self.weight_total = Growing()
        self.eval_step = Growing()
        self.eval_epoch = Growing()
        self.train_loss = Growing()
        self.val_loss = Growing()
        self.train_acc = Growing()
        self.val_acc = Growing()
        self.dropout_loss = Growing()
        self.patience = Growing()
        self.last_eval: EvalPoint | None = None
        self.summary: RunSummary | None = None
        self.started: JobStarted | None = None
        self.failed: JobFailed | None = None
        self.ended: JobEnded | None = None
        self.stop_requested = False
        self.dirty_steps = self.dirty_evals = self.dirty_layers = True

    def add(self, item: Any) -> None:
        if isinstance(item, StepBlock):
            self._add_steps(item)
        elif isinstance(item, EvalPoint):
            self.eval_step.append(item.step)
            self.eval_epoch.append(item.epoch)
            self.train_loss.append(item.train_loss)
            self.val_loss.append(item.val_loss)
            self.train_acc.append(item.train_acc)
            self.val_acc.append(item.val_acc)
            self.dropout_loss.append(item.train_loss_dropout)
            self.patience.append(item.patience_count)
            self.last_eval = item
            self.dirty_evals = True
        elif isinstance(item, RunSummary):
            self.summary = item
            self.dirty_evals = self.dirty_steps = True
        elif isinstance(item, JobStarted):
            self.started = item
        elif isinstance(item, JobFailed):
            self.failed = item
        elif isinstance(item, JobEnded):
            self.ended = item
            self.dirty_evals = self.dirty_steps = True  # the loss plot marks a run stopped by the user

    def _add_steps(self, block: StepBlock) -> None:
        self.step.extend(block.step.astype(np.float64))
        self.epoch.extend(block.epoch)
        self.loss.extend(block.loss)
        self.lr.extend(block.lr)
        self.grad.extend(block.grad_norm)
        self.elapsed.extend(block.elapsed)
        self.dirty_steps = True
        if len(block.layer_step):
            if self.layer_grad is None:
                width = block.layer_grad.shape[1]
                try:
                    readable = layer_labels(self.cfg)
                except Exception:  # only names; never worth a failed frame
                    readable = {}
                self.layer_names = tuple(readable.get(n, n) for n in block.layer_names)
                self.layer_grad, self.layer_weight, self.update_ratio = (Growing((width,)) for _ in range(3))
            self.layer_step.extend(block.layer_step.astype(np.float64))
            self.layer_grad.extend(block.layer_grad)
            self.layer_weight.extend(block.layer_weight)
            self.update_ratio.extend(block.update_ratio)
            with np.errstate(invalid="ignore", over="ignore"):
                self.weight_total.extend(np.sqrt(np.sum(block.layer_weight ** 2, axis=1)))
            self.dirty_layers = True

    # ---- state ----
    @property
    def finished(self) -> bool:
        return self.ended is not None

    @property
    def stopped_by_user(self) -> bool:
        """Ended on the user's request (its own stop button, or Stop for all) before its end."""
        return self.ended is not None and self.ended.stopped and self.summary is None and self.failed is None

    @property
    def diverged_at(self) -> int:
        return self.summary.diverged_at if self.summary is not None else -1

    def state(self) -> str:
        if self.failed is not None:
            return "failed"
        if self.summary is not None:
            s = self.summary
            if s.diverged:
                return f"diverged at step {s.diverged_at}"
            if s.stopped_early:
                return "stopped early, best restored" if s.restored_best else "stopped early"
            return "done, best restored" if s.restored_best else "done"
        if self.stopped_by_user:
            return f"stopped by you at step {int(self.step.view[-1])}" if len(self.step) else "stopped by you"
        if self.ended is not None:
            return "stopped"
        if self.stop_requested:
            return "stopping"
        if self.started is None:
            return "loading"
        return "training" if len(self.step) else "starting"

    def best_eval_index(self) -> int:
        if self.summary is not None and self.summary.best_eval >= 0:
            return self.summary.best_eval
        if len(self.val_loss) == 0:
            return -1
        v = self.val_loss.view
        finite = np.isfinite(v)
        return int(np.argmin(np.where(finite, v, np.inf))) if finite.any() else -1

    def current_epoch(self) -> float:
        return float(self.epoch.view[-1]) if len(self.epoch) else 0.0

    def gradient_report(self, explode: float, vanish: float):
        if self.layer_grad is None:
            return None
        return gradient_report(self.layer_step.view, self.layer_grad.view, explode, vanish)


# ---- drawing helpers ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _brush(colour: Any) -> QBrush:
    """One brush object per colour. pyqtgraph's symbol atlas keys on the brush (and pen) object: a brush made
    afresh at each setData re-renders the symbols and rebuilds the atlas, every time."""
    return pg.mkBrush(colour)


@functools.lru_cache(maxsize=None)
def _spen(colour: Any, width: float = 1.0) -> QPen:
    """One symbol outline pen object per colour and width (see _brush)."""
    return pg.mkPen(colour, width=width) if colour is not None else pg.mkPen(None)


def _filled_marks(i: int) -> dict[str, Any]:
    """An evaluation curve's markers: the run's symbol filled with its colour."""
    return {"symbol": run_symbol(i), "symbolBrush": _brush(run_colour(i)), "symbolPen": _spen(DEFAULT_SYMBOL_PEN, 1),
            "symbolSize": 7}


def _pen(i: int, width: float = 1.5, style=Qt.SolidLine) -> Any:
    return pg.mkPen(run_colour(i), width=width, style=style)


def _legend_sample(i: int, label: str, plot: pg.PlotWidget, style=Qt.SolidLine) -> None:
    sample = pg.PlotDataItem(pen=_pen(i, 2, style), symbol=run_symbol(i), symbolBrush=_brush(run_colour(i)),
                             symbolPen=pg.mkPen("#333", width=0.8), symbolSize=8)
    legend = plot.getPlotItem().legend
    if legend is not None:
        legend.addItem(sample, label)


class StickyY:
    """The y range of a plot redrawn every frame, moved only when the data leaves it or fills less than
    half of it: an axis whose range changes re-lays its ticks and repaints in full, several times the
    cost of the curves.

    ``robust`` (linear axes): the top stops at the typical values (see FENCE_K), so that one run's spike
    does not flatten the others; ``clipped`` is then the highest value left above the axis (None: none)."""

    def __init__(self, plot: pg.PlotWidget, log: bool, empty: tuple[float, float] = (0.0, 1.0),
                 robust: bool = False):
        self.plot = plot
        self.log = log
        self.empty = empty  # the range shown before any data (in values, not log10)
        self.robust = robust
        self.reset()

    def reset(self) -> None:
        """Forget the range: an empty plot shows ``empty``, not the previous comparison's range."""
        self.lo = self.hi = None
        self.data_lo = self.data_hi = None
        self._starts: list[float] = []
        self._tops: list[float] = []
        self.clipped: float | None = None
        lo, hi = self.empty
        if self.log:
            lo, hi = math.log10(lo), math.log10(hi)
        self.plot.enableAutoRange(y=False)
        self.plot.setYRange(lo, hi, padding=0)

    def bounds(self, y: np.ndarray) -> tuple | None:
        """One run's finite (and, on a log axis, positive) min and max of ``y``, its first such value, and
        (robust linear axes) its typical top (see FENCE_K)."""
        y = y[np.isfinite(y)]
        if self.log:
            y = y[y > 0]
        if not len(y):
            return None
        hi = float(y.max())
        top = None
        if self.robust and not self.log:
            top = hi
            if len(y) >= 8:
                q10, q90 = np.percentile(y, [10.0, 90.0])
                top = min(hi, float(q90 + FENCE_K * (q90 - q10)))
        return float(y.min()), hi, float(y[0]), top

    def include(self, bounds: tuple | None) -> None:
        """Widen this frame's data bounds by one run's."""
        if bounds is None:
            return
        lo, hi = bounds[0], bounds[1]
        self.data_lo = lo if self.data_lo is None else min(self.data_lo, lo)
        self.data_hi = hi if self.data_hi is None else max(self.data_hi, hi)
        if len(bounds) > 3:
            self._starts.append(bounds[2])
            if bounds[3] is not None:
                self._tops.append(bounds[3])

    def typical_top(self) -> float | None:
        """The top of this frame's typical values (None: nothing to go by)."""
        if not self._tops:
            return None
        tops = np.asarray(self._tops)
        if len(tops) > 1:
            # Against the runs' common start (they share initial weights) or the lowest top if higher: a
            # reference that holds however many runs blow up (a median of the others does not when most do).
            ref = max(float(np.median(self._starts)) if self._starts else 0.0, float(tops.min()))
            tops = tops[tops <= OUTLIER_RATIO * ref]  # the lowest top always stays
        top = float(tops.max())
        if self._starts:
            top = max(top, START_HEADROOM * float(np.median(self._starts)))
        return top

    def apply(self) -> None:
        if self.data_lo is None:
            return
        lo, hi = self.data_lo, self.data_hi
        self.data_lo = self.data_hi = None
        top = self.typical_top() if self.robust and not self.log else None
        self._starts, self._tops = [], []
        self.clipped = None
        if top is not None and hi > top > lo:
            self.clipped, hi = hi, top
        if self.log:
            lo, hi = math.log10(lo), math.log10(hi)
        if self.lo is not None and self.lo <= lo and hi <= self.hi and (hi - lo) >= 0.5 * (self.hi - self.lo):
            return
        span = hi - lo
        pad = 0.08 * span if span > 0 else (0.1 if self.log else max(0.1 * abs(hi), 1e-6))
        self.lo, self.hi = lo - pad, hi + pad
        self.plot.enableAutoRange(y=False)
        self.plot.setYRange(self.lo, self.hi, padding=0)


def marker_positions(total: int, i: int, runs: int) -> np.ndarray:
    """STEP_MARKERS fixed x positions over a run of ``total`` steps, offset per run so markers do not pile up.

    Fixed rather than spread over the points so far: a marker is drawn once and then stays, and the
    marker item is only updated when the curve reaches the next position.
    """
    spacing = total / STEP_MARKERS
    return (np.arange(STEP_MARKERS) + (i + 0.5) / max(runs, 1)) * spacing


class LogAxis(pg.AxisItem):
    """A log axis labelled 1-2-5 (0.001, 0.002, 0.005, 0.01...): pyqtgraph labels every minor tick, and
    near the top of each decade their labels run into one another."""

    def tickStrings(self, values, scale, spacing):
        if not self.logMode:
            return super().tickStrings(values, scale, spacing)
        out = []
        for v in values:
            value = 10.0 ** v
            exponent = math.floor(v + 1e-9)
            lead = value / 10.0 ** exponent
            keep = abs(lead - round(lead)) < 1e-6 and round(lead) in (1, 2, 5)
            out.append(f"{value:.3g}" if keep else "")
        if values and not any(out):  # a range inside one 1-2-5 step: label what there is
            out = [f"{10.0 ** v:.3g}" for v in values]
        return out


def quiet_log_axis(plot: pg.PlotWidget) -> None:
    """Swap the left axis of a log-y plot for a LogAxis, keeping its label."""
    old = plot.getAxis("left")
    label = old.labelText
    axis = LogAxis("left")
    axis.enableAutoSIPrefix(False)
    plot.setAxisItems({"left": axis})
    plot.setLabel("left", label)
    axis.setLogMode(False, True)


class StepCurve(pg.PlotCurveItem):
    """A per-step curve: a bare PlotCurveItem (a fraction of PlotDataItem's cost per setData) that does
    its own log10 on a log axis, where the view's coordinates are log10 of the values."""

    def __init__(self, plot: pg.PlotWidget, pen, log: bool):
        super().__init__(pen=pen, antialias=False, connect="finite")
        self.log = log
        plot.addItem(self)

    def set_values(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        self.setData(x, y, connect="finite")


class MarkerLayer:
    """Every run's markers on one plot in a single ScatterPlotItem (per-point symbol and colour): one item
    to paint instead of one per run, rebuilt only when a run's markers change."""

    def __init__(self, plot: pg.PlotWidget, log: bool):
        self.log = log
        self.item = pg.ScatterPlotItem(size=7, pen=pg.mkPen("#333", width=0.8), pxMode=True)
        plot.addItem(self.item)
        self.runs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.changed = False

    def set_run(self, i: int, x: np.ndarray, y: np.ndarray) -> None:
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        self.runs[i] = (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        self.changed = True

    def flush(self) -> None:
        if not self.changed:
            return
        self.changed = False
        xs, ys, symbols, brushes = [], [], [], []
        for i, (x, y) in sorted(self.runs.items()):
            keep = np.isfinite(y)
            xs.append(x[keep])
            ys.append(y[keep])
            symbols += [run_symbol(i)] * int(keep.sum())
            brushes += [_brush(run_colour(i))] * int(keep.sum())
        if not symbols:
            self.item.setData([], [])
            return
        self.item.setData(np.concatenate(xs), np.concatenate(ys), symbol=symbols, brush=brushes)


def _set_step_curve(curve: StepCurve, markers: MarkerLayer, x: np.ndarray, y: np.ndarray,
                    positions: np.ndarray | None, state: dict, key: str, force: bool, sticky: StickyY | None = None
                    ) -> None:
    xd, yd = decimate(x, y, MAX_DRAWN)
    curve.set_values(xd, yd)
    if sticky is not None:
        state[key + "_bounds"] = sticky.bounds(yd)
    if positions is None or not len(x):
        return
    reached = int(np.searchsorted(positions, x[-1], side="right"))
    if force or state.get(key) != reached:
        state[key] = reached
        idx = np.clip(np.searchsorted(x, positions[:reached]), 0, len(x) - 1)
        markers.set_run(state["index"], x[idx], y[idx])


def _set_points(item: pg.PlotDataItem, x, y) -> None:
    """A few marks (a star, an x): hidden while empty, since Qt asks every visible item for its bounds and
    paints it with every repaint of its view, data or not."""
    item.setData(x, y)
    item.setVisible(len(x) > 0)


def _log_value(v: float) -> float:
    return math.log10(v) if v > 0 else 0.0


def _clear_plot(plot: pg.PlotWidget) -> None:
    plot.getPlotItem().clear()  # removes data items and lines, keeps axes
    legend = plot.getPlotItem().legend
    if legend is not None:
        legend.clear()


def _empty_range(plot: pg.PlotWidget, x: tuple[float, float] = (0.0, 1.0), y: tuple[float, float] = (0.0, 1.0),
                 log_y: bool = False) -> None:
    """Show a neutral range on a plot that has just been emptied (pyqtgraph's auto-range keeps the old one
    while there is nothing to fit), then auto-range again once data comes."""
    if log_y:
        y = (math.log10(y[0]), math.log10(y[1]))
    plot.setXRange(*x, padding=0)
    plot.setYRange(*y, padding=0)
    plot.enableAutoRange()


class CurvesPage(QWidget):
    """Per step: mini-batch loss, learning rate, gradient norm, weight norm. Per evaluation: losses, accuracy.

    The two loss plots share a log-scale switch and a "fit typical values" switch (robust top, StickyY)."""

    options_changed = Signal()  # a display option changed: everything is to be drawn again

    def __init__(self, parent=None):
        super().__init__(parent)
        self.loss_log = False
        self.log_check = QCheckBox("log scale for losses")
        self.log_check.setToolTip("Both loss plots on a log axis: a run far above the others (a spike, a divergence) "
                                  "and the small differences near the end show together. Values that are not "
                                  "positive are left out; a run that diverged keeps its last finite point and its x.")
        self.fit_check = QCheckBox("fit loss axes to typical values")
        self.fit_check.setChecked(True)
        self.fit_check.setToolTip("Linear loss axes stop at the typical values (the runs' start, or the bulk of the "
                                  "points and a margin), so one run's spike or divergence goes off the top instead "
                                  "of flattening the others. What is cut off is said beside this box.")
        self.clip_note = QLabel()
        self.clip_note.setStyleSheet(f"color: {NOTE_COLOUR};")
        self.clip_note.setToolTip("Values above the top of a loss axis (\"fit loss axes to typical values\"). "
                                  "The log scale shows them.")
        self._clip_text = ""
        self.log_check.toggled.connect(self.set_loss_log)
        self.fit_check.toggled.connect(self.set_fit_typical)
        self.step_loss = make_plot("Mini-batch loss (train mode)", "loss", "step")
        self.eval_loss = make_plot("Loss: train solid, val dashed", "loss", "epoch")
        self.acc = make_plot("Accuracy: val solid, train dotted", "accuracy", "epoch")
        self.lr = make_plot("Learning rate", "lr", "step", log_y=True)
        self.grad = make_plot("Gradient norm (x: layer flagged)", "||g||", "step", log_y=True)
        self.weight = make_plot("Weight norm ||W||", "||W||", "step")
        self.step_loss.setToolTip("Loss of each mini-batch in train mode (dropout on), before the update. The dashed "
                                  "lines are label-smoothing floors. An x marks where a run diverged.")
        self.eval_loss.setToolTip("Eval-mode loss on a fixed sample of training digits (solid) and on the validation "
                                  "split (dashed). Star: best evaluation. Arrow up: overfitting (validation loss rising "
                                  "for several evaluations while training loss falls). Dotted vertical: early stop.")
        self.acc.setToolTip("Share of digits classified right, per evaluation.")
        self.lr.setToolTip("The rate each step used (param_groups[0]['lr']), on a log axis.")
        self.grad.setToolTip("L2 norm of the whole gradient each step. An x marks a step where some layer's gradient "
                             "norm crossed the exploding or vanishing threshold (Layers tab).")
        self.weight.setToolTip("L2 norm of all weight matrices together: weight decay shows here. Coupled L2 (Adam + L2) "
                               "and decoupled decay (AdamW) with the same value shrink the weights differently.")
        # Redrawn every frame: no grid (it costs more to paint than the curves) and fixed axes.
        for w in self.plots():
            w.showGrid(False, False)
        quiet_log_axis(self.lr)
        quiet_log_axis(self.grad)
        for plot in (self.step_loss, self.eval_loss):  # 1-2-5 labels once the log switch is on
            quiet_log_axis(plot)
            plot.getAxis("left").setLogMode(False, False)  # linear until then (the plot's own mode is linear)
        bar = QHBoxLayout()
        bar.setContentsMargins(4, 0, 4, 0)
        bar.addWidget(self.log_check)
        bar.addWidget(self.fit_check)
        bar.addWidget(self.clip_note, 1)
        grid = pg.QtWidgets.QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        for k, w in enumerate((self.step_loss, self.eval_loss, self.acc, self.lr, self.grad, self.weight)):
            grid.addWidget(w, k // 3, k % 3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addLayout(grid, 1)
        self.items: list[dict[str, Any]] = []
        self.x_steps = 0
        self.x_epochs = 0.0
        self.frame = 0
        self.markers: dict[str, MarkerLayer] = {}
        self.floor_lines: list[tuple[pg.InfiniteLine, float]] = []
        self.sticky = {"loss": StickyY(self.step_loss, False, (0.0, 2.5), robust=True),
                       "lr": StickyY(self.lr, True, (1e-4, 1.0)),
                       "grad": StickyY(self.grad, True, (0.01, 100.0)), "weight": StickyY(self.weight, False),
                       "evloss": StickyY(self.eval_loss, False, (0.0, 2.5), robust=True),
                       "acc": StickyY(self.acc, False)}
        self._log_empty = {"loss": (0.01, 10.0), "evloss": (0.01, 10.0)}
        self._lin_empty = {"loss": (0.0, 2.5), "evloss": (0.0, 2.5)}

    # ---- display options ----
    def set_loss_log(self, on: bool) -> None:
        """Both loss plots on a log (True) or linear axis; the curves are drawn again at the next refresh."""
        on = bool(on)
        if on == self.loss_log:
            return
        self.loss_log = on
        if self.log_check.isChecked() != on:
            self.log_check.setChecked(on)
        for plot in (self.step_loss, self.eval_loss):
            plot.setLogMode(False, on)  # PlotDataItems follow; it also turns auto-range on, undone below
        for d in self.items:
            d["loss"].log = on
        if "loss" in self.markers:
            self.markers["loss"].log = on
        for line, value in self.floor_lines:
            line.setValue(math.log10(value) if on else value)
        for d in self.items:  # bounds measured for the other axis
            d.pop("loss_n_bounds", None)
            d.pop("evloss_n_bounds", None)
        for key in ("loss", "evloss"):
            sticky = self.sticky[key]
            sticky.log = on
            sticky.empty = (self._log_empty if on else self._lin_empty)[key]
            sticky.reset()
        self.x_steps, self.x_epochs = 0, 0.0  # set again by _fix_x
        self._show_clipped()
        self.options_changed.emit()

    def set_fit_typical(self, on: bool) -> None:
        """Linear loss axes fitted to the typical values (True) or to every value."""
        for key in ("loss", "evloss"):
            self.sticky[key].robust = bool(on)
            self.sticky[key].reset()
        if self.fit_check.isChecked() != bool(on):
            self.fit_check.setChecked(bool(on))
        self._show_clipped()
        self.options_changed.emit()

    def _show_clipped(self) -> None:
        parts = []
        for key, name in (("loss", "mini-batch loss"), ("evloss", "loss")):
            top = self.sticky[key].clipped
            if top is not None:
                parts.append(f"{name} up to {top:.3g}")
        text = ("Off the top: " + ", ".join(parts) + " (log scale shows it).") if parts else ""
        if text != self._clip_text:
            self._clip_text = text
            self.clip_note.setText(text)

    def plots(self) -> tuple[pg.PlotWidget, ...]:
        return (self.step_loss, self.eval_loss, self.acc, self.lr, self.grad, self.weight)

    def reset(self, traces: list[RunTrace], planned_steps: int = 0) -> None:
        """Items for these runs, and empty plots with the new comparison's x ranges (``planned_steps``: the
        longest run's steps, when known) rather than the previous one's ranges."""
        for p in self.plots():
            _clear_plot(p)
        self.items = []
        n = len(traces)
        self.markers = {"loss": MarkerLayer(self.step_loss, self.loss_log), "lr": MarkerLayer(self.lr, True),
                        "grad": MarkerLayer(self.grad, True), "weight": MarkerLayer(self.weight, False)}
        for t in traces:
            i = t.index
            d: dict[str, Any] = {"index": i, "drawn": {}, "stop_line": None, "stop_mark": None}
            d["loss"] = StepCurve(self.step_loss, _pen(i, 1), log=self.loss_log)
            d["loss_m"] = self.markers["loss"]
            d["diverged"] = self.step_loss.plot(pen=None, symbol="x", symbolSize=16,
                                                symbolBrush=_brush(run_colour(i)), symbolPen=_spen(run_colour(i), 2))
            d["stopped"] = self.step_loss.plot(pen=None, symbol="s", symbolSize=11, symbolBrush=_brush(None),
                                               symbolPen=_spen(run_colour(i), 2))
            d["train"] = self.eval_loss.plot(pen=_pen(i, 2), **_filled_marks(i))
            d["val"] = self.eval_loss.plot(pen=_pen(i, 2, Qt.DashLine), symbol=run_symbol(i), symbolSize=7,
                                           symbolBrush=_brush((255, 255, 255, 0)), symbolPen=_pen(i, 1.5))
            d["best"] = self.eval_loss.plot(pen=None, symbol="star", symbolSize=18, symbolBrush=_brush(run_colour(i)),
                                            symbolPen=_spen("#222", 1))
            # In the run's colour with a darker outline of it, large enough to see on either theme.
            d["overfit"] = self.eval_loss.plot(pen=None, symbol=OVERFIT_ARROW, symbolSize=OVERFIT_SIZE,
                                               symbolBrush=_brush(run_colour(i)),
                                               symbolPen=_spen(QColor(run_colour(i)).darker(150).name(), 1.2))
            d["overfit"].setZValue(5)
            d["stop"] = None
            d["val_acc"] = self.acc.plot(pen=_pen(i, 2), **_filled_marks(i))
            d["train_acc"] = self.acc.plot(pen=_pen(i, 1, Qt.DotLine))
            d["lr"] = StepCurve(self.lr, _pen(i, 1.5), log=True)
            d["lr_m"] = self.markers["lr"]
            d["grad"] = StepCurve(self.grad, _pen(i, 1), log=True)
            d["grad_m"] = self.markers["grad"]
            d["grad_flag"] = self.grad.plot(pen=None, symbol="x", symbolSize=9, symbolBrush=_brush(run_colour(i)),
                                            symbolPen=_spen(run_colour(i), 1.5))
            for key in ("diverged", "stopped", "best", "overfit", "grad_flag"):
                d[key].setVisible(False)  # marks, mostly empty: hidden items cost nothing to repaint
            d["weight"] = StepCurve(self.weight, _pen(i, 1.5), log=False)
            d["weight_m"] = self.markers["weight"]
            self.items.append(d)
        floors = sorted({t.cfg.label_smoothing for t in traces if t.cfg.label_smoothing > 0})
        self.floor_lines = []
        for s in floors:
            value = smoothing_floor(s)
            for plot in (self.step_loss, self.eval_loss):
                line = pg.InfiniteLine(math.log10(value) if self.loss_log else value, angle=0,
                                       pen=pg.mkPen("#777", width=1, style=Qt.DashLine),
                                       label=f"floor s={s:g}: {value:.4f}",
                                       labelOpts={"position": 0.08, "color": "#777", "anchors": [(0, 1), (0, 1)]})
                line.setToolTip(f"With label smoothing {s:g} the cross-entropy cannot fall below {value:.4f}, the "
                                f"entropy of the smoothed target.")
                plot.addItem(line)
                self.floor_lines.append((line, value))
        self._runs = n
        # Empty plots show the new comparison's x ranges (or a neutral one), not the previous comparison's.
        self.x_steps = int(planned_steps)
        for p in (self.step_loss, self.lr, self.grad, self.weight):
            p.setXRange(0, max(self.x_steps, 1), padding=STEP_X_PADDING)
        self.x_epochs = float(max((t.cfg.epochs for t in traces), default=0))
        for p in (self.eval_loss, self.acc):
            p.setXRange(0, max(self.x_epochs, 1.0), padding=0.03)
        for sticky in self.sticky.values():
            sticky.reset()
        self._show_clipped()

    def _fix_x(self, traces: list[RunTrace]) -> None:
        """The x axes span the planned run: they do not move (nor re-lay their ticks) as curves grow."""
        total = max((t.started.total_steps for t in traces if t.started is not None), default=0)
        if total and total != self.x_steps:
            self.x_steps = total
            for p in (self.step_loss, self.lr, self.grad, self.weight):
                p.setXRange(0, total, padding=STEP_X_PADDING)
        epochs = float(max((t.cfg.epochs for t in traces), default=0))
        if epochs and epochs != self.x_epochs:
            self.x_epochs = epochs
            for p in (self.eval_loss, self.acc):
                p.setXRange(0, epochs, padding=0.03)

    def refresh(self, traces: list[RunTrace], explode: float, vanish: float, overfit_patience: int,
                force: bool = False, eval_budget: int = 2) -> set[int]:
        """Redraw what changed. The mini-batch loss is redrawn every frame; the learning rate, gradient norm
        and weight norm take turns, one of them every other frame (each about 6 times a second at 35 frames
        a second): every plot redrawn is a full repaint of its view, and these three move slowly.
        Evaluation curves of at most ``eval_budget`` runs are redrawn per frame (all runs evaluate at once;
        spreading them keeps each frame short); the others' indices are returned. ``force`` draws
        everything now."""
        runs = len(traces)
        budget = eval_budget if not force else len(traces)
        deferred: set[int] = set()
        self._fix_x(traces)
        self.frame += 1
        turn = SECONDARY[self.frame % len(SECONDARY)]
        for t, d in zip(traces, self.items):
            i = t.index
            drawn = d["drawn"]
            pos = marker_positions(t.started.total_steps, i, runs) if t.started is not None else None
            n = len(t.step)
            x = t.step.view
            st = self.sticky
            if force or t.dirty_steps:
                loss = finite_or_nan(t.loss.view)
                if force or drawn.get("loss") != n:
                    drawn["loss"] = n
                    _set_step_curve(d["loss"], d["loss_m"], x, loss, pos, d, "loss_n", force, st["loss"])
                div = t.diverged_at
                mark: tuple = ()
                if div > 0:
                    finite = np.flatnonzero(np.isfinite(loss))
                    mark = (float(div), float(loss[finite[-1]]) if len(finite) else 0.0)
                    if self.loss_log and mark[1] <= 0:
                        mark = ()  # nowhere to put it on a log axis
                if force or drawn.get("diverged") != mark:
                    drawn["diverged"] = mark
                    _set_points(d["diverged"], mark[:1], mark[1:])
                self._stop_mark(t, d, loss, force)
            if (force or turn == "lr") and drawn.get("lr") != n:
                drawn["lr"] = n
                _set_step_curve(d["lr"], d["lr_m"], x, positive_or_nan(t.lr.view), pos, d, "lr_n", force, st["lr"])
            if (force or turn == "grad") and (drawn.get("grad") != n or drawn.get("flags") != len(t.layer_step)):
                drawn["grad"] = n
                _set_step_curve(d["grad"], d["grad_m"], x, positive_or_nan(t.grad.view), pos, d, "grad_n", force,
                                st["grad"])
                drawn["flags"] = len(t.layer_step)
                flagged = flags_for(t, explode, vanish)
                if len(flagged) and n:
                    at = np.clip(flagged.astype(np.int64) - 1, 0, n - 1)
                    _set_points(d["grad_flag"], flagged, positive_or_nan(t.grad.view[at]))
                    d["flagged"] = True
                elif d.get("flagged", True):
                    _set_points(d["grad_flag"], [], [])
                    d["flagged"] = False
            m = len(t.layer_step)
            if (force or turn == "weight") and drawn.get("weight") != m and m:
                drawn["weight"] = m
                _set_step_curve(d["weight"], d["weight_m"], t.layer_step.view, finite_or_nan(t.weight_total.view),
                                pos, d, "weight_n", force, st["weight"])
            if t.dirty_evals:
                if budget <= 0:
                    deferred.add(i)
                    continue
                budget -= 1
                self._refresh_evals(t, d, overfit_for(t, overfit_patience))
        for key, sticky in self.sticky.items():
            for d in self.items:
                sticky.include(d.get(key + "_n_bounds"))
            sticky.apply()
        self._show_clipped()
        for layer in self.markers.values():
            layer.flush()
        return deferred

    def _stop_mark(self, t: RunTrace, d: dict[str, Any], loss: np.ndarray, force: bool) -> None:
        """A run stopped by the user: a square at its last step on the loss plot, and a dotted line there."""
        stopped = t.stopped_by_user
        if stopped and len(loss) and (force or d.get("stop_mark") is None):
            finite = np.flatnonzero(np.isfinite(loss))
            last = float(t.step.view[-1])
            y = float(loss[finite[-1]]) if len(finite) else 0.0
            _set_points(d["stopped"], *(([last], [y]) if y > 0 or not self.loss_log else ([], [])))
            d["stop_mark"] = last
            if d.get("stop_line") is None:
                line = pg.InfiniteLine(last, angle=90, pen=pg.mkPen(run_colour(t.index), width=1.2, style=Qt.DotLine),
                                       label=f"{t.index + 1} stopped", labelOpts={
                                           "position": 0.95 - 0.07 * (t.index % 8), "color": run_colour(t.index)})
                line.setToolTip(f"Run {t.index + 1} ({t.label}) was stopped by you at step {int(last)}.")
                self.step_loss.addItem(line)
                d["stop_line"] = line
            else:
                d["stop_line"].setValue(last)

    def _refresh_evals(self, t: RunTrace, d: dict[str, Any], mask: np.ndarray | None) -> None:
        i = t.index
        e = t.eval_epoch.view
        drawable = positive_or_nan if self.loss_log else finite_or_nan  # a log axis leaves out what is not positive
        train, val = drawable(t.train_loss.view), drawable(t.val_loss.view)
        d["train"].setData(e, train, connect="finite")
        d["val"].setData(e, val, connect="finite")
        d["val_acc"].setData(e, t.val_acc.view)
        d["train_acc"].setData(e, t.train_acc.view)
        st = self.sticky
        d["evloss_n_bounds"] = st["evloss"].bounds(np.concatenate([train, val]))
        d["acc_n_bounds"] = st["acc"].bounds(np.concatenate([t.val_acc.view, t.train_acc.view]))
        b = t.best_eval_index()
        best = ((float(e[b]),), (float(t.val_loss.view[b]),)) if 0 <= b < len(e) else ((), ())
        if d.get("best_data") != best:  # markers are rebuilt on every setData: only when they move
            d["best_data"] = best
            _set_points(d["best"], list(best[0]), list(best[1]))
        over = (tuple(e[mask]), tuple(t.val_loss.view[mask])) if mask is not None and mask.any() else ((), ())
        if d.get("overfit_data") != over:
            d["overfit_data"] = over
            _set_points(d["overfit"], list(over[0]), list(over[1]))
        if t.summary is not None and t.summary.stopped_early and d["stop"] is None and len(e):
            line = pg.InfiniteLine(float(e[-1]), angle=90, pen=pg.mkPen(run_colour(i), width=1.5, style=Qt.DotLine),
                                   label=f"stop {i + 1}", labelOpts={"position": 0.95 - 0.07 * (i % 8),
                                                                     "color": run_colour(i)})
            self.eval_loss.addItem(line)
            d["stop"] = line


class LayersPage(QWidget):
    """Per layer of one run: gradient norm (with the thresholds), weight norm, update-to-weight ratio."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_combo = QComboBox()
        self.run_combo.setToolTip("Whose layers to show.")
        # One key for the three plots, beside the run's name: legends inside the plots covered their curves.
        self.key = QLabel()
        self.key.setTextFormat(Qt.RichText)
        self.key.setToolTip("Each layer's colour and marker, the same in the three plots.")
        self.note = QLabel()
        self.note.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("run"))
        top.addWidget(self.run_combo)
        top.addWidget(self.key)
        top.addSpacing(12)
        top.addWidget(self.note, 1)
        self.grad = make_plot("Gradient norm per layer", "||g||", "step", log_y=True)
        self.weight = make_plot("Weight norm per layer", "||W||", "step")
        self.ratio = make_plot("Update / weight ratio", "||dW|| / ||W||", "step", log_y=True)
        self.grad.setToolTip("L2 norm of each layer's weight gradient. Above the upper dashed line: exploding; below "
                             "the lower one: vanishing (set both in Diagnostics).")
        self.weight.setToolTip("L2 norm of each layer's weight matrix after the update.")
        self.ratio.setToolTip("Size of each step relative to the weights. About 1e-3 (dotted line) is the usual "
                              "healthy value; far above, the rate is too high; far below, the layer barely learns.")
        quiet_log_axis(self.grad)
        quiet_log_axis(self.ratio)
        plots = QHBoxLayout()
        for p in (self.grad, self.weight, self.ratio):
            plots.addWidget(p)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(plots, 1)
        self.curves: dict[str, list[pg.PlotDataItem]] = {}
        self.shown_run = -1
        self.width = -1
        self.drawn, self.drawn_at = -1, 0.0
        self.explode_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#D55E00", width=1.5, style=Qt.DashLine),
                                            label="exploding", labelOpts={"position": 0.25, "color": "#D55E00"})
        self.vanish_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("#0072B2", width=1.5, style=Qt.DashLine),
                                           label="vanishing", labelOpts={"position": 0.25, "color": "#0072B2"})
        self.healthy_line = pg.InfiniteLine(math.log10(HEALTHY_UPDATE_RATIO), angle=0,
                                            pen=pg.mkPen("#777", width=1, style=Qt.DotLine), label="1e-3",
                                            labelOpts={"position": 0.05, "color": "#777"})

    def plots(self) -> tuple[pg.PlotWidget, ...]:
        return (self.grad, self.weight, self.ratio)

    def reset(self, traces: list[RunTrace]) -> None:
        current = max(self.run_combo.currentIndex(), 0)
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for t in traces:
            self.run_combo.addItem(f"{t.index + 1}. {t.label}")
        self.run_combo.setCurrentIndex(min(current, max(len(traces) - 1, 0)))
        self.run_combo.blockSignals(False)
        self.shown_run = -1
        self.width = -1
        self.drawn = -1
        for plot in self.plots():  # the previous comparison's curves and ranges go now, not at the first data
            _clear_plot(plot)
        self.curves = {"grad": [], "weight": [], "ratio": []}
        self._empty_ranges()
        self.note.setText("No layer statistics yet.")
        self.note.setStyleSheet("")
        self.key.setText("")

    def _empty_ranges(self) -> None:
        _empty_range(self.grad, y=(1e-6, 100.0), log_y=True)
        _empty_range(self.weight)
        _empty_range(self.ratio, y=(1e-4, 1.0), log_y=True)

    def _rebuild(self, trace: RunTrace, explode: float, vanish: float) -> None:
        for p in self.plots():
            _clear_plot(p)
        self._empty_ranges()
        self.curves = {"grad": [], "weight": [], "ratio": []}
        width = trace.layer_grad.view.shape[1] if trace.layer_grad is not None else 0
        keys = []
        for k in range(width):
            name = trace.layer_names[k] if k < len(trace.layer_names) else str(k)
            colour = LAYER_COLOURS[k % len(LAYER_COLOURS)]
            glyph = LAYER_GLYPHS[k % len(LAYER_GLYPHS)]
            keys.append(f'<span style="color:{colour}">{glyph}&#8202;&#9472;</span>&nbsp;{html.escape(name)}')
            for key, plot in (("grad", self.grad), ("weight", self.weight), ("ratio", self.ratio)):
                item = plot.plot(pen=pg.mkPen(colour, width=1.5), symbol=LAYER_SYMBOLS[k % len(LAYER_SYMBOLS)],
                                 symbolSize=5, symbolBrush=_brush(colour), symbolPen=_spen(None), name=name)
                self.curves[key].append(item)
        self.key.setText("&nbsp;&nbsp;".join(keys))
        self.grad.addItem(self.explode_line)
        self.grad.addItem(self.vanish_line)
        self.ratio.addItem(self.healthy_line)
        self.shown_run = trace.index
        self.width = width

    def refresh(self, traces: list[RunTrace], explode: float, vanish: float, force: bool = False) -> None:
        row = self.run_combo.currentIndex()
        if not 0 <= row < len(traces):
            return
        t = traces[row]
        width = t.layer_grad.view.shape[1] if t.layer_grad is not None else 0
        if self.shown_run != t.index or self.width != width:
            self._rebuild(t, explode, vanish)
            force = True
        self.explode_line.setValue(math.log10(explode))
        self.vanish_line.setValue(math.log10(vanish))
        if t.layer_grad is None:
            self.note.setText("No layer statistics yet.")
            return
        now = time.perf_counter()
        # Three plots of every layer, each a full repaint: ten times a second is enough for statistics that
        # arrive about ten times an epoch; the last frame of a run is forced, so nothing is left undrawn.
        if not force and (self.drawn == len(t.layer_step) or now - self.drawn_at < LAYERS_INTERVAL_S):
            return
        self.drawn, self.drawn_at = len(t.layer_step), now
        x = t.layer_step.view
        for key, arr, log in (("grad", t.layer_grad, True), ("weight", t.layer_weight, False),
                              ("ratio", t.update_ratio, True)):
            for k, item in enumerate(self.curves[key]):
                y = arr.view[:, k]
                y = positive_or_nan(y) if log else finite_or_nan(y)
                xd, yd = decimate(x, y, MAX_DRAWN)
                item.setData(xd, yd, connect="finite")
        report = t.gradient_report(explode, vanish)
        every = t.started.layer_stats_every if t.started is not None else 1
        text = f"Layer statistics every {every} step{'s' if every != 1 else ''}. "
        if report is None or report.healthy:
            text += "Gradients within the thresholds."
        else:
            text += "Gradients " + report.describe(t.layer_names) + "."
        self.note.setText(text)
        self.note.setStyleSheet("" if report is None or report.healthy else "color: #D55E00;")


class RegularisersPage(QWidget):
    """Dropout's train/eval gap, the generalisation gap, the confidence histogram, early stopping's patience."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.dropout = make_plot("Dropout: train-mode (solid) vs eval-mode (dashed) loss", "loss", "epoch")
        self.gap = make_plot("Generalisation gap: validation - train loss", "gap", "epoch")
        self.conf = make_plot("Confidence on validation digits (last evaluation)", "share of digits",
                              "max softmax probability")
        self.patience = make_plot("Early stopping: evaluations since the best", "count", "epoch")
        self.dropout.setToolTip("The same training digits scored with the same weights twice. Solid: in train mode "
                                "(dropout on). Dashed: in eval mode (dropout off). Dropout makes the solid curve sit "
                                "above the dashed one; the distance is what dropout alone costs while training "
                                "(a run without dropout draws the two on top of each other).")
        self.gap.setToolTip("Validation loss minus training loss (eval mode). Growing: the network is memorising.")
        self.conf.setToolTip("Histogram of the highest predicted probability per validation digit. Label smoothing "
                             "keeps it away from 1; an overfit network piles up at 1.")
        self.patience.setToolTip("Early stopping's counter as it counts: evaluations without a better validation loss. "
                                 "The run stops when it reaches the patience (dashed, in the run's colour), and the "
                                 "best weights are restored.")
        grid = pg.QtWidgets.QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(2)
        for k, w in enumerate(self.plots()):
            grid.addWidget(w, k // 2, k % 2)
        self.items: list[dict[str, Any]] = []
        self.patience_note: pg.TextItem | None = None  # said on the patience plot when no run stops early

    def plots(self) -> tuple[pg.PlotWidget, ...]:
        return (self.dropout, self.gap, self.conf, self.patience)

    def reset(self, traces: list[RunTrace]) -> None:
        for p in self.plots():
            _clear_plot(p)
        self.items = []
        epochs = float(max((t.cfg.epochs for t in traces), default=1))
        for plot in (self.dropout, self.gap, self.patience):
            _empty_range(plot, x=(0.0, epochs))
        _empty_range(self.conf)
        zero = pg.InfiniteLine(0.0, angle=0, pen=pg.mkPen("#999", width=1))
        self.gap.addItem(zero)
        # The counter is drawn for the runs that stop early only: a run without a patience never stops on it.
        using = [t for t in traces if t.cfg.early_stopping]
        if not traces:
            title = "Early stopping: evaluations since the best"
        elif not using:
            title = "Early stopping: off in every run"
        elif len(using) < len(traces):
            title = f"Early stopping: evaluations since the best ({len(using)} of {len(traces)} runs)"
        else:
            title = "Early stopping: evaluations since the best"
        self.patience.setTitle(title)
        self.patience_note = None
        if traces and not using:
            self.patience.setYRange(0.0, 1.0, padding=0)
            self.patience.enableAutoRange(enable=False)
            self.patience_note = pg.TextItem("No run has a patience: set one in a run's settings\n(early stopping) "
                                             "to draw its counter here.", color="#888", anchor=(0.5, 0.5))
            self.patience_note.setPos(epochs / 2, 0.5)
            self.patience.addItem(self.patience_note, ignoreBounds=True)
        for t in traces:
            i = t.index
            d = {
                "train_mode": self.dropout.plot(pen=_pen(i, 2), **_filled_marks(i)),
                "eval_mode": self.dropout.plot(pen=_pen(i, 2, Qt.DashLine), symbol=run_symbol(i), symbolSize=7,
                                               symbolBrush=_brush((255, 255, 255, 0)), symbolPen=_pen(i, 1.5)),
                "gap": self.gap.plot(pen=_pen(i, 2), **_filled_marks(i)),
                "conf": self.conf.plot(pen=_pen(i, 2), stepMode="center"),
                "patience": self.patience.plot(pen=_pen(i, 2), **_filled_marks(i)) if t.cfg.early_stopping else None,
            }
            if t.cfg.early_stopping:
                self.patience.addItem(pg.InfiniteLine(t.cfg.early_stopping, angle=0,
                                                      pen=pg.mkPen(run_colour(i), width=1.5, style=Qt.DashLine)))
            self.items.append(d)

    def refresh(self, traces: list[RunTrace]) -> None:
        for t, d in zip(traces, self.items):
            if not t.dirty_evals:
                continue
            e = t.eval_epoch.view
            d["train_mode"].setData(e, finite_or_nan(t.dropout_loss.view), connect="finite")
            d["eval_mode"].setData(e, finite_or_nan(t.train_loss.view), connect="finite")
            with np.errstate(invalid="ignore"):
                d["gap"].setData(e, finite_or_nan(t.val_loss.view - t.train_loss.view), connect="finite")
            if d["patience"] is not None:
                d["patience"].setData(e, t.patience.view)
            if t.last_eval is not None:
                edges, share = confidence_histogram(t.last_eval.confidences)
                d["conf"].setData(edges, share)


def flags_for(trace: RunTrace, explode: float, vanish: float) -> np.ndarray:
    """Steps at which some layer's gradient norm crossed a threshold."""
    if trace.layer_grad is None or len(trace.layer_step) == 0:
        return np.zeros(0)
    flags = gradient_flags(trace.layer_grad.view, explode, vanish)
    rows = (flags == EXPLODING).any(axis=1) | (flags == VANISHING).any(axis=1)
    return trace.layer_step.view[rows]


def overfit_for(trace: RunTrace, patience: int) -> np.ndarray:
    """Where a stretch of overfitting begins (one marker per stretch, not one per evaluation)."""
    flags = overfitting_flags(trace.train_loss.view, trace.val_loss.view, patience)
    onset = flags.copy()
    onset[1:] &= ~flags[:-1]
    return onset


class RunLegend(QWidget):
    """One legend for every plot: each run's marker, colour and name, in a row above the pages, with a button
    that stops that run alone while the others go on (a diverging run, say)."""

    stop_requested = Signal(int)  # position of the run in the comparison (its job index)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.row = QHBoxLayout(self)
        self.row.setContentsMargins(4, 0, 4, 0)
        self.row.setSpacing(14)
        self.setToolTip("Every plot draws run k in this colour with this marker. Per-step curves carry a few markers; "
                        "evaluation curves one per evaluation. The square button stops that run only.")
        self.names: list[QLabel] = []
        self.stops: list[QToolButton] = []
        self._shown: list[tuple] = []

    def set_runs(self, traces: list[RunTrace]) -> None:
        while self.row.count():
            widget = self.row.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)  # off screen now, not at the next event-loop turn
                widget.deleteLater()
        self.names, self.stops, self._shown = [], [], []
        for pos, t in enumerate(traces):
            icon = QLabel()
            icon.setPixmap(run_icon(t.index, 14).pixmap(14, 14))
            text = QLabel(f"{t.index + 1}. {t.label}")
            text.setStyleSheet(f"color: {run_colour(t.index)}; font-weight: bold;")
            stop = QToolButton()
            stop.setText("\u25A0")
            stop.setAutoRaise(True)
            stop.setToolTip(f"Stop run {t.index + 1} ({t.label}) now; the other runs go on. Its curves stay drawn.")
            stop.setAccessibleName(f"Stop run {t.index + 1}")
            stop.setEnabled(False)
            stop.clicked.connect(lambda _=False, k=pos: self.stop_requested.emit(k))
            self.row.addWidget(icon)
            self.row.addWidget(text)
            self.row.addWidget(stop)
            self.names.append(text)
            self.stops.append(stop)
            self._shown.append(())
        self.row.addStretch(1)

    def update_runs(self, traces: list[RunTrace], training: bool) -> None:
        """Each run's stop button is live while that run trains; a run stopped by the user says so."""
        for pos, t in enumerate(traces[: len(self.stops)]):
            can_stop = training and not t.finished and not t.stop_requested
            note = " (stopped by you)" if t.stopped_by_user else " (stopping)" if t.stop_requested and not t.finished \
                else ""
            if self._shown[pos] == (can_stop, note):
                continue
            self._shown[pos] = (can_stop, note)
            self.stops[pos].setEnabled(can_stop)
            self.names[pos].setText(f"{t.index + 1}. {t.label}{note}")


class PlotTabs(QTabWidget):
    """The pages; only the one showing is redrawn, the others catch up when shown."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.curves = CurvesPage()
        self.layers = LayersPage()
        self.regularisers = RegularisersPage()
        self.addTab(self.curves, "Curves")
        self.addTab(self.layers, "Layers")
        self.addTab(self.regularisers, "Regularisers")
        self.setTabToolTip(0, "Loss, accuracy, learning rate, gradient and weight norms of every run.")
        self.setTabToolTip(1, "Per-layer gradient and weight norms and update ratios of one run; exploding and "
                              "vanishing gradients flagged.")
        self.setTabToolTip(2, "Dropout's train/eval gap, the generalisation gap, confidence histograms and early "
                              "stopping's patience counter.")
        self._stale: set[int] = set()
        self.currentChanged.connect(lambda _=None: self._stale.add(self.currentIndex()))

    def reset(self, traces: list[RunTrace], planned_steps: int = 0) -> None:
        """New runs: every page emptied, with the new comparison's ranges (``planned_steps``: see CurvesPage)."""
        self.curves.reset(traces, planned_steps)
        self.layers.reset(traces)
        self.regularisers.reset(traces)
        self._stale = {0, 1, 2}

    def refresh(self, traces: list[RunTrace], explode: float, vanish: float, overfit_patience: int,
                force: bool = False) -> None:
        page = self.currentIndex()
        stale = force or page in self._stale
        if stale:
            for t in traces:
                t.dirty_steps = t.dirty_evals = t.dirty_layers = True
        deferred: set[int] = set()
        if page == 0:
            deferred = self.curves.refresh(traces, explode, vanish, overfit_patience, force=stale)
        elif page == 1:
            self.layers.refresh(traces, explode, vanish, force=stale)
        elif page == 2:
            self.regularisers.refresh(traces)
        self._stale.discard(page)
        if any(t.dirty_steps or t.dirty_evals or t.dirty_layers for t in traces):
            self._stale |= {0, 1, 2} - {page}
        for t in traces:
            t.dirty_steps = t.dirty_layers = False
            t.dirty_evals = t.index in deferred
