"""Recording: clips of any view at a fixed frame rate and a fixed number of steps per frame, the
presenter themes, and headless rendering of a session file (``python main.py render``).

A clip's content never depends on the machine's speed: frame 0 is the view as it is, and before every
later frame ``advance(steps_per_frame)`` moves the run on by exactly that many steps. Frames are
painted by Qt into an image (``QWidget.render``, which works offscreen) and encoded by PyAV
(``engine.render.VideoWriter``: H.264 in MP4, or GIF with one palette for the whole clip).

Public API for the window (see the wiring notes in the module's report):

* ``record_widget(widget, advance, path, fps, steps_per_frame, size, title, equation, ...)``: blocking.
* ``Recorder``: the same, one frame per event-loop turn, with progress/finished/failed signals.
* ``PLOT_THEMES``, ``apply_plot_theme(root_widget, name)``: default, presenter-light, presenter-dark (plots
  only: fonts, line widths, markers, colours; the window's light/dark palette is gui.theme's).
* ``render_session(session, video=..., csv_dir=...)``: what ``python main.py render`` runs.
"""
from __future__ import annotations

import math
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEventLoop, QObject, QPoint, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QRegion, QTextDocument
from PySide6.QtWidgets import QApplication, QGridLayout, QHBoxLayout, QVBoxLayout, QWidget

from engine.registry import ConfigError
from engine.render import (LandscapeStream, MnistStream, Progress, VideoWriter, frame_steps, parse_size,
                           write_session_copy)
from engine.session import Session

from .style import DIVERGED_SYMBOL, PALETTE, symbol

CURVE_POINTS = 1200  # points drawn per curve in a clip (peak-preserving decimation)
BASE_HEIGHT = 720  # scenes are laid out for 720 lines and painted scaled to the clip's size
HEADER_LINES_PX = (34, 24)  # title and equation line heights at 720p (scaled with the clip)


# ---- themes ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Theme:
    name: str
    background: str
    foreground: str
    font_px: int  # axis ticks and labels
    title_px: int
    line_scale: float  # multiplies every curve's pen width
    marker_scale: float
    legend_brush: tuple[int, int, int, int]
    palette: tuple[str, ...] = PALETTE  # Okabe-Ito: safe for the common colour-vision deficiencies

    def colour(self, i: int) -> str:
        return self.palette[i % len(self.palette)]


# On a dark background black vanishes: presenter-dark swaps it for white, the rest stays Okabe-Ito.
_DARK_PALETTE = tuple("#FFFFFF" if c.upper() == "#000000" else c for c in PALETTE)
PLOT_THEMES: dict[str, Theme] = {
    "default": Theme("default", "#FFFFFF", "#000000", 11, 14, 1.0, 1.0, (255, 255, 255, 200)),
    "presenter-light": Theme("presenter-light", "#FFFFFF", "#000000", 18, 26, 2.0, 1.5, (255, 255, 255, 220)),
    "presenter-dark": Theme("presenter-dark", "#1E1E1E", "#E8E8E8", 18, 26, 2.0, 1.5, (40, 40, 40, 220),
                            _DARK_PALETTE),
}


def get_theme(theme: str | Theme | None) -> Theme:
    if isinstance(theme, Theme):
        return theme
    name = theme or "default"
    if name not in PLOT_THEMES:
        raise ConfigError("theme", f"{name!r} is not one of {', '.join(PLOT_THEMES)}")
    return PLOT_THEMES[name]


def _font(px: int, bold: bool = False) -> QFont:
    f = QFont()
    f.setPixelSize(max(6, int(px)))
    f.setBold(bold)
    return f


def _plot_widgets(root: QWidget) -> list[pg.PlotWidget]:
    found = [root] if isinstance(root, pg.PlotWidget) else []
    return found + list(root.findChildren(pg.PlotWidget))


def style_plot(w: pg.PlotWidget, theme: Theme) -> None:
    """Background, axes, labels, title, legend and every curve's width for one plot."""
    fg = theme.foreground
    w.setBackground(theme.background)
    item = w.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        ax = item.getAxis(name)
        ax.setPen(pg.mkPen(fg))
        ax.setTextPen(pg.mkPen(fg))
        ax.setTickFont(_font(theme.font_px))
        if ax.labelText:
            ax.setLabel(ax.labelText, ax.labelUnits or None, **{"font-size": f"{theme.font_px + 1}px", "color": fg})
    if item.titleLabel.text:
        item.setTitle(item.titleLabel.text, size=f"{theme.title_px * 0.75:.0f}pt", color=fg)
    legend = item.legend
    if legend is not None:
        legend.setBrush(pg.mkBrush(*theme.legend_brush))
        legend.setPen(pg.mkPen(fg))
        legend.setLabelTextColor(fg)
        legend.setLabelTextSize(f"{theme.font_px * 0.75:.0f}pt")
        for _, label in legend.items:  # existing labels take the new colour and size only when re-set
            label.setText(label.text, color=fg, size=f"{theme.font_px * 0.75:.0f}pt")
    for data_item in item.listDataItems():
        _scale_item(data_item, theme)


def _scale_item(it: Any, theme: Theme) -> None:
    """Curve widths and marker sizes times the theme's factors, from each item's original values."""
    if isinstance(it, pg.PlotDataItem):
        base = it.__dict__.setdefault("_optiscope_base", {"pen": it.opts.get("pen"), "size": it.opts.get("symbolSize")})
        pen = pg.mkPen(base["pen"]) if base["pen"] is not None else None
        if pen is not None and pen.style() != Qt.NoPen:
            pen.setWidthF(max(1.0, pen.widthF() or 1.0) * theme.line_scale)
            if theme.name == "presenter-dark" and pen.color().name().upper() == "#000000":
                pen.setColor(QColor(theme.foreground))
            it.setPen(pen)
        if base["size"]:
            it.setSymbolSize(base["size"] * theme.marker_scale)
    elif isinstance(it, pg.ScatterPlotItem):
        base = it.__dict__.setdefault("_optiscope_base", {"size": it.opts.get("size", 7)})
        it.setSize(base["size"] * theme.marker_scale)


def apply_plot_theme(root: QWidget, theme: str | Theme) -> Theme:
    """Style every pyqtgraph plot under ``root`` (fonts, line widths, markers, colours, background).

    Idempotent: widths and sizes are scaled from each item's original values, so switching themes
    back and forth does not compound. Items created after the call keep their own style until it is
    called again (call it after a panel rebuilds its curves, e.g. after reset).
    """
    t = get_theme(theme)
    for w in _plot_widgets(root):
        style_plot(w, t)
    return t


# ---- painting frames ----------------------------------------------------------------------------------------

def header_height(height: int, title: str, equation: str) -> int:
    s = height / BASE_HEIGHT
    return int(round(((HEADER_LINES_PX[0] if title else 0) + (HEADER_LINES_PX[1] if equation else 0)
                      + (10 if title or equation else 0)) * s))


# Commands the function registry's formulas use beyond what gui.mathtext reads.
_TEX_FIXES = (("\\tfrac12", "\\frac{1}{2}"), ("\\tfrac1n", "\\frac{1}{n}"), ("\\tfrac", "\\frac"),
              ("\\kappa", "κ"), ("\\quad", "; "), ("\\sum_i", "Σ_i"), ("\\mathrm{BCE}", "BCE"),
              ("\\varepsilon", "ε"))


def equation_html(text: str) -> str:
    """A function's formula (the registry's LaTeX subset) as rich text; plain text for a typed expression."""
    if not text:
        return ""
    import html
    import re
    if "\\" in text or "^" in text or "_" in text:
        tex = text
        for a, b in _TEX_FIXES:
            tex = re.sub(re.escape(a) + r"(?![A-Za-z])", lambda _m, b=b: b, tex)
        try:
            from .mathtext import latex_to_html  # the window's own LaTeX-subset renderer
            return latex_to_html(tex)
        except Exception:
            return html.escape(tex)
    return html.escape(text.replace("**", "^"))


class FramePainter:
    """Paints a widget, scaled to fit, under an optional title/equation band, into one reused image."""

    def __init__(self, width: int, height: int, theme: Theme, title: str = "", equation: str = ""):
        self.width, self.height, self.theme = width, height, theme
        self.title, self.equation = title, equation
        self.header = header_height(height, title, equation)
        self.image = QImage(width, height, QImage.Format_RGB32)  # BGRA bytes on little-endian machines
        self.bgra = sys.byteorder == "little"
        self._header_image: QImage | None = None

    def paint(self, widget: QWidget) -> np.ndarray:
        img = self.image
        img.fill(QColor(self.theme.background))
        p = QPainter(img)
        try:
            p.setRenderHint(QPainter.Antialiasing, True)
            p.setRenderHint(QPainter.TextAntialiasing, True)
            p.setRenderHint(QPainter.SmoothPixmapTransform, True)
            if self.header:
                if self._header_image is None:  # the band never changes: paint it once
                    self._header_image = QImage(self.width, self.header, QImage.Format_RGB32)
                    self._header_image.fill(QColor(self.theme.background))
                    hp = QPainter(self._header_image)
                    hp.setRenderHint(QPainter.Antialiasing, True)
                    hp.setRenderHint(QPainter.TextAntialiasing, True)
                    self._paint_header(hp)
                    hp.end()
                p.drawImage(0, 0, self._header_image)
            ww, wh = max(widget.width(), 1), max(widget.height(), 1)
            avail_h = self.height - self.header
            scale = min(self.width / ww, avail_h / wh)
            ox = (self.width - ww * scale) / 2
            oy = self.header + (avail_h - wh * scale) / 2
            p.translate(ox, oy)
            p.scale(scale, scale)
            # QWidget's render, not QGraphicsView's (a PlotWidget is a QGraphicsView): the widget as drawn.
            QWidget.render(widget, p, QPoint(0, 0), QRegion(), QWidget.RenderFlag.DrawChildren)
        finally:
            p.end()
        arr = np.frombuffer(img.constBits(), dtype=np.uint8).reshape(self.height, img.bytesPerLine() // 4, 4)
        arr = arr[:, : self.width]
        return arr if self.bgra else arr[..., ::-1]  # big-endian: ARGB bytes, reversed to BGRA

    def _paint_header(self, p: QPainter) -> None:
        if not self.header:
            return
        s = self.height / BASE_HEIGHT
        fg = QColor(self.theme.foreground)
        y = 6 * s
        if self.title:
            p.setPen(fg)
            p.setFont(_font(self.theme.title_px * s * (1.15 if self.theme.name == "default" else 1.0), bold=True))
            h = HEADER_LINES_PX[0] * s
            p.drawText(QRectF(0, y, self.width, h), Qt.AlignHCenter | Qt.AlignVCenter, self.title)
            y += h
        if self.equation:
            doc = QTextDocument()
            doc.setDefaultFont(_font(self.theme.font_px * s * 1.35))
            doc.setDefaultStyleSheet(f"body {{ color: {self.theme.foreground}; }}")
            doc.setHtml(f"<body style='color:{self.theme.foreground}'>{equation_html(self.equation)}</body>")
            doc.setTextWidth(-1)
            w = doc.idealWidth()
            p.save()
            p.translate((self.width - w) / 2, y)
            doc.drawContents(p)
            p.restore()


def widget_image(widget: QWidget, width: int, height: int, theme: str | Theme = "default", title: str = "",
                 equation: str = "") -> np.ndarray:
    """One (height, width, 3) RGB frame of ``widget`` as it is now, scaled to fit (a still for slides)."""
    bgra = FramePainter(width, height, get_theme(theme), title, equation).paint(widget)
    return np.ascontiguousarray(bgra[..., 2::-1])


# ---- recording a live view -----------------------------------------------------------------------------------

class _Clip:
    """The shared frame loop of record_widget and Recorder."""

    def __init__(self, widget: QWidget, advance: Callable[[int], bool], path: str | os.PathLike, fps: int,
                 steps_per_frame: int, size: str | tuple[int, int], title: str, equation: str,
                 frames: int | None, theme: str | Theme, max_frames: int):
        if steps_per_frame < 1:
            raise ConfigError("steps_per_frame", f"must be at least 1, got {steps_per_frame}")
        if not 1 <= fps <= 120:
            raise ConfigError("fps", f"must be between 1 and 120, got {fps}")
        self.widget, self.advance, self.spf = widget, advance, int(steps_per_frame)
        self.width, self.height = parse_size(size)
        self.painter = FramePainter(self.width, self.height, get_theme(theme), title, equation)
        self.frames = frames
        self.max_frames = frames if frames is not None else max_frames
        self.writer = VideoWriter(path, self.width, self.height, fps, pixel_format="bgra", threaded=True)
        self.done = 0
        self.ended = False

    def step(self) -> bool:
        """Paint one frame (advancing first, except for frame 0). False when the clip is complete."""
        if self.done and not self.ended:
            self.ended = not self.advance(self.spf)
        # Let layouts and pending updates settle before painting (clicks and keys wait).
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        self.writer.write(self.painter.paint(self.widget))
        self.done += 1
        if self.frames is not None:
            return self.done < self.frames
        return not self.ended and self.done < self.max_frames

    def close(self) -> Path:
        return self.writer.close()

    def abort(self) -> None:
        self.writer.abort()


def record_widget(widget: QWidget, advance: Callable[[int], bool], path: str | os.PathLike, fps: int = 30,
                  steps_per_frame: int = 1, size: str | tuple[int, int] = "720p", title: str = "",
                  equation: str = "", frames: int | None = None, theme: str | Theme = "default",
                  progress: Callable[[int, int], None] | None = None, max_frames: int = 36_000) -> Path:
    """Record ``widget`` to ``path`` (.mp4: H.264 yuv420p; .gif) and return the path.

    ``advance(n)`` must move the view on by exactly ``n`` optimiser steps (blocking until they are
    drawn) and return False once the run has ended; it is called before every frame but the first.
    Without ``frames`` the clip ends with the frame after the run ends (or at ``max_frames``); with
    it the clip has exactly that many frames, holding the last state. ``size``: "720p", "1080p" or
    (w, h). The widget is painted scaled to fit under the optional title/equation band.
    """
    clip = _Clip(widget, advance, path, fps, steps_per_frame, size, title, equation, frames, theme, max_frames)
    total = frames or max_frames
    try:
        while clip.step():
            if progress:
                progress(clip.done, total)
        if progress:
            progress(clip.done, clip.done)
        return clip.close()
    except BaseException:
        clip.abort()
        raise


class Recorder(QObject):
    """``record_widget`` without blocking the window: one frame per event-loop turn.

    ``start()`` begins; ``cancel()`` stops and deletes the partial file. Signals: ``progress(done,
    total)`` (total is ``frames`` or 0 when the run's end decides), ``finished(path)``, ``failed(message)``.
    """

    progress = Signal(int, int)
    finished = Signal(str)
    failed = Signal(str)

    def __init__(self, widget: QWidget, advance: Callable[[int], bool], path: str | os.PathLike, fps: int = 30,
                 steps_per_frame: int = 1, size: str | tuple[int, int] = "720p", title: str = "",
                 equation: str = "", frames: int | None = None, theme: str | Theme = "default",
                 max_frames: int = 36_000, parent: QObject | None = None):
        super().__init__(parent)
        self._args = (widget, advance, path, fps, steps_per_frame, size, title, equation, frames, theme, max_frames)
        self._clip: _Clip | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._tick)

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        try:
            self._clip = _Clip(*self._args)
        except Exception as exc:
            self.failed.emit(str(exc))
            return
        self._timer.start()

    def cancel(self) -> None:
        self._timer.stop()
        if self._clip is not None:
            self._clip.abort()
            self._clip = None

    def _tick(self) -> None:
        clip = self._clip
        if clip is None:
            return
        try:
            more = clip.step()
            self.progress.emit(clip.done, clip.frames or 0)
            if not more:
                self._timer.stop()
                path = clip.close()
                self._clip = None
                self.finished.emit(str(path))
        except Exception as exc:
            self._timer.stop()
            clip.abort()
            self._clip = None
            self.failed.emit(f"recording stopped: {exc}")


def landscape_advance(panel: Any, timeout_s: float = 30.0) -> Callable[[int], bool]:
    """An ``advance`` for ``record_widget``/``Recorder`` driving the window's LandscapePanel.

    Takes exactly ``n`` frames from the panel's worker (waiting for them) and draws them. Record with
    the panel paused: its own timer would otherwise take frames too. Uses the panel's worker API
    (``_ensure_worker``, ``worker.wait_for_records``, ``_consume``); a public ``panel.advance(n)``
    with the same body is the natural home for it.
    """
    def advance(n: int) -> bool:
        if not panel._ensure_worker():
            return False
        panel.worker.wait_for_records(n, timeout_s)
        panel._consume(n)
        return not panel.worker.finished_and_drained()
    return advance


# ---- headless scenes ----------------------------------------------------------------------------------------

CACHE = pg.QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache


def log_ticks(lo: float, hi: float, most: int = 6) -> list[list[tuple[float, str]]]:
    """Ticks for a log axis over [lo, hi] (values > 0), in pyqtgraph's log10 coordinates: labels at
    1, 2, 5 x 10^k (thinned to at most ``most``), unlabelled minor ticks at the other multiples."""
    k0, k1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    labelled, minor = [], []
    for k in range(k0, k1 + 1):
        for m in range(1, 10):
            v = m * 10.0 ** k
            if not lo / 1.2 <= v <= hi * 1.2:
                continue
            (labelled if m in (1, 2, 5) else minor).append(v)
    for keep in ((1, 2, 5), (1, 5), (1,)):
        major = [v for v in labelled if round(v / 10 ** math.floor(math.log10(v) + 1e-9)) in keep]
        if len(major) <= most:
            break
    if len(major) > most:  # many decades: every other decade
        major = major[::math.ceil(len(major) / most)]
    minor += [v for v in labelled if v not in major]
    return [[(math.log10(v), f"{v:g}") for v in major], [(math.log10(v), "") for v in sorted(minor)]]


def cache_axes(root: QWidget) -> None:
    """Axes (with their grid lines) are repainted from a cached pixmap until their range changes:
    most of a frame's painting time otherwise goes into redrawing unchanged ticks and grids."""
    for w in _plot_widgets(root):
        for name in ("left", "bottom", "right", "top"):
            ax = w.getPlotItem().getAxis(name)
            if ax.isVisible():
                ax.setCacheMode(CACHE)


def _base_size(width: int, height: int, header: int) -> tuple[int, int]:
    s = height / BASE_HEIGHT
    return int(round(width / s)), int(round((height - header) / s))


class LandscapeScene(QWidget):
    """The 2D view without controls: contour map with paths and heads, and loss, gradient and rate curves.

    Built from the same pieces as the window's LandscapePanel (colour map, contour lines, colours and
    marker shapes per optimiser, log axes, masking of non-positive values), fed from a LandscapeStream.
    """

    def __init__(self, stream: LandscapeStream, theme: Theme, parent: QWidget | None = None,
                 ranges: dict[str, tuple[float, float] | None] | None = None):
        super().__init__(parent)
        from .landscape_panel import CONTOUR_LEVELS, GRID, contour_paths, log_levels
        from .plots import make_plot

        self.stream, self.theme = stream, theme
        cfg, fn = stream.cfg, stream.function
        params = fn.resolve(cfg.function_params)
        self.setAttribute(Qt.WA_DontShowOnScreen, True)
        self.map_plot = pg.PlotWidget()
        self.map_plot.setMenuEnabled(False)
        data = getattr(fn, "data", None)
        labels = getattr(data, "axis_labels", ("x", "y"))
        self.map_plot.setLabel("bottom", labels[0])
        self.map_plot.setLabel("left", labels[1])
        xs, ys, z = fn.grid(GRID, GRID, params)
        levels = log_levels(z)
        dx, dy = xs[1] - xs[0], ys[1] - ys[0]
        image = pg.ImageItem(axisOrder="row-major")
        image.setColorMap(pg.colormap.get("cividis"))
        image.setImage(levels, autoLevels=True)
        image.setRect(QRectF(xs[0] - dx / 2, ys[0] - dy / 2, dx * len(xs), dy * len(ys)))
        self.map_plot.addItem(image)
        cx, cy = contour_paths(levels, xs, ys, CONTOUR_LEVELS)
        contours = pg.PlotDataItem(cx, cy, pen=pg.mkPen((255, 255, 255, 90), width=1), connect="finite")
        self.map_plot.addItem(contours)
        for item in (image, contours):  # the background never changes: paint it once, then reuse the pixels
            item.setCacheMode(CACHE)
        minima = np.array(fn.minima_for(params), dtype=float).reshape(-1, 2)
        self.map_plot.addItem(pg.ScatterPlotItem(minima[:, 0], minima[:, 1], symbol="+", size=14,
                                                 pen=pg.mkPen("w", width=2), brush=None))
        start = cfg.start if cfg.start is not None else fn.start
        self.map_plot.addItem(pg.ScatterPlotItem([start[0]], [start[1]], symbol="o", size=10,
                                                 pen=pg.mkPen("w", width=2), brush=None))
        legend = self.map_plot.addLegend(offset=(10, 10))
        (x0, x1), (y0, y1) = fn.domain
        self.map_plot.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        self.map_plot.getPlotItem().vb.disableAutoRange()
        self.fmin = fn.min_value if fn.min_value is not None else self._fmin(fn, cfg, z)

        self.loss_plot = make_plot(left="loss f(x, y) - f*", bottom="step", log_y=True)
        self.grad_plot = make_plot(left="gradient norm", bottom="step", log_y=True)
        self.lr_plot = make_plot(left="learning rate", bottom="step", log_y=True)
        self.axes_move = False  # True when some curve plot auto-ranges (its extent was not known up front)
        # Base widths and sizes, as in the window; apply_plot_theme below scales them for presenter themes.
        self.paths, self.heads, self.curves = [], [], []
        for i, label in enumerate(stream.labels):
            c = theme.colour(i)
            path = pg.PlotDataItem(pen=pg.mkPen(c, width=2), connect="finite")
            head = pg.ScatterPlotItem(symbol=symbol(i), size=11, pen=pg.mkPen("k", width=1), brush=pg.mkBrush(c))
            self.map_plot.addItem(path)
            self.map_plot.addItem(head)
            legend.addItem(head, label)
            self.paths.append(path)
            self.heads.append(head)
            row = []
            for plot in (self.loss_plot, self.grad_plot, self.lr_plot):
                curve = pg.PlotDataItem(pen=pg.mkPen(c, width=1.5), connect="finite")
                plot.addItem(curve)
                row.append(curve)
            self.curves.append(row)
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen("#888", style=Qt.DashLine))
        self.lr_plot.addItem(self.cursor)
        for plot, key in ((self.loss_plot, "loss"), (self.grad_plot, "grad_norm"), (self.lr_plot, "lr")):
            plot.setXRange(0, max(cfg.steps, 1), padding=0.02)
            plot.getPlotItem().vb.disableAutoRange(pg.ViewBox.XAxis)
            plot.setMenuEnabled(False)
            extent = (ranges or {}).get(key)
            self.axes_move = self.axes_move or extent is None
            if extent is not None:  # known from a first pass: the axis is fixed from frame 0
                lo, hi = extent
                if hi <= lo * 1.0001:
                    lo, hi = lo / 2, hi * 2
                plot.setYRange(math.log10(lo), math.log10(hi), padding=0.05)
                plot.getPlotItem().vb.disableAutoRange(pg.ViewBox.YAxis)
                plot.getAxis("left").setTicks(log_ticks(lo, hi))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self.map_plot, 3)
        right = QVBoxLayout()
        for plot in (self.loss_plot, self.grad_plot, self.lr_plot):
            right.addWidget(plot)
        layout.addLayout(right, 2)
        self.setAutoFillBackground(True)
        self.setStyleSheet(f"background: {theme.background};")
        apply_plot_theme(self, theme)
        cache_axes(self)
        legend.setBrush(pg.mkBrush(*theme.legend_brush) if theme.name == "presenter-dark"
                        else pg.mkBrush(255, 255, 255, 200))
        legend.setCacheMode(CACHE)  # the labels never change during a clip

    @staticmethod
    def _fmin(fn, cfg, z: np.ndarray | None = None) -> float:
        """The loss curves show f - f*: f* is known, or the lowest value sampled on the map (as the window does)."""
        from engine.minibatch import known_minimum_value
        known = known_minimum_value(fn, cfg.function_params)
        if known is not None:
            return known
        if z is None:
            from .landscape_panel import GRID
            z = fn.grid(GRID, GRID, fn.resolve(cfg.function_params))[2]
        return float(np.nanmin(z[np.isfinite(z)])) if np.isfinite(z).any() else 0.0

    def draw(self) -> None:
        from .series import thin_path
        from .series import decimate, positive_or_nan

        s = self.stream
        last = s.last
        if last is None:
            return
        steps = s.steps.view.astype(np.float64)
        for i in range(s.k):
            if s.xy is not None:
                traj = s.xy.view[:, i]  # (T, N, 2)
                if s.n == 1:
                    self.paths[i].setData(*thin_path(traj[:, 0, 0], traj[:, 0, 1]))
                else:
                    padded = np.concatenate([traj, np.full((1, s.n, 2), np.nan)], axis=0)
                    flat = padded.transpose(1, 0, 2).reshape(-1, 2)
                    self.paths[i].setData(flat[:, 0], flat[:, 1])
            head = last.xy[i]
            dead = last.diverged_at[i] >= 0
            self.heads[i].setData(head[:, 0], head[:, 1],
                                  symbol=[DIVERGED_SYMBOL if d else symbol(i) for d in dead])
            for curve, values in zip(self.curves[i], (s.loss.view[:, i] - self.fmin, s.grad_norm.view[:, i],
                                                      s.lr.view[:, i])):
                # Peaks kept (min and max per bucket), about two points per pixel of a curve plot.
                curve.setData(*decimate(steps, positive_or_nan(values), CURVE_POINTS))
        self.cursor.setValue(float(last.step))


class MnistScene(QWidget):
    """The MNIST curves of every run in a session: mini-batch loss, validation loss and accuracy, rate."""

    def __init__(self, stream: MnistStream, theme: Theme, parent: QWidget | None = None):
        super().__init__(parent)
        from .plots import make_plot

        self.stream, self.theme = stream, theme
        self.axes_move = True  # loss and accuracy axes follow the curves as training goes
        self.setAttribute(Qt.WA_DontShowOnScreen, True)
        self.step_plot = make_plot("Training loss per step", "loss", "step", legend=True)
        self.val_plot = make_plot("Validation loss per evaluation", "loss", "epoch")
        self.acc_plot = make_plot("Validation accuracy", "accuracy", "epoch")
        self.lr_plot = make_plot("Learning rate", "lr", "step", log_y=True)
        self.items = []
        for i, t in enumerate(stream.traces):
            c = theme.colour(i)
            self.items.append((
                self.step_plot.plot(pen=pg.mkPen(c, width=1), name=t.label),
                self.val_plot.plot(pen=pg.mkPen(c, width=2), symbol=symbol(i), symbolBrush=c, symbolSize=7),
                self.acc_plot.plot(pen=pg.mkPen(c, width=2), symbol=symbol(i), symbolBrush=c, symbolSize=7),
                self.lr_plot.plot(pen=pg.mkPen(c, width=2)),
            ))
        smoothing = [r.label_smoothing for r in stream.runs if r.label_smoothing > 0]
        if smoothing:
            from engine.training import smoothing_floor
            for sm in sorted(set(smoothing)):
                self.val_plot.addItem(pg.InfiniteLine(smoothing_floor(sm), angle=0,
                                                      pen=pg.mkPen("#888", style=Qt.DashLine)))
        steps = max(stream.total_steps, 1)
        epochs = max(r.epochs for r in stream.runs)
        for plot, hi in ((self.step_plot, steps), (self.lr_plot, steps), (self.val_plot, epochs),
                         (self.acc_plot, epochs)):
            plot.setXRange(0, hi, padding=0.02)
            plot.getPlotItem().vb.disableAutoRange(pg.ViewBox.XAxis)
            plot.setMenuEnabled(False)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 6)
        grid.addWidget(self.step_plot, 0, 0)
        grid.addWidget(self.val_plot, 0, 1)
        grid.addWidget(self.lr_plot, 1, 0)
        grid.addWidget(self.acc_plot, 1, 1)
        self.setAutoFillBackground(True)
        self.setStyleSheet(f"background: {theme.background};")
        apply_plot_theme(self, theme)
        cache_axes(self)

    def draw(self) -> None:
        from .series import decimate, finite_or_nan, positive_or_nan

        for t, (loss, val, acc, lr) in zip(self.stream.traces, self.items):
            x = t.step.view
            loss.setData(*decimate(x, finite_or_nan(t.loss.view)))
            lr.setData(*decimate(x, positive_or_nan(t.lr.view)))
            e = np.array([p.epoch for p in t.evals], dtype=np.float64)
            val.setData(e, finite_or_nan(np.array([p.val_loss for p in t.evals], dtype=np.float64)))
            acc.setData(e, np.array([p.val_acc for p in t.evals], dtype=np.float64))


# ---- rendering a session without a screen ---------------------------------------------------------------------

@dataclass
class RenderResult:
    video: Path | None
    files: list[Path]
    frames: int
    steps_per_frame: int
    fps: int
    size: tuple[int, int]


def ensure_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(["optiscope-render"])
        # Row-major images (Z[row = y, col = x]) as the engine lays them out; the window's own options
        # (set by gui.app.configure) are left alone when rendering from inside the window.
        pg.setConfigOptions(imageAxisOrder="row-major", antialias=True, background="w", foreground="k",
                            segmentedLineMode="on")
    return app


def function_equation(session: Session) -> str:
    from engine.landscape import resolve_function
    fn = resolve_function(session.landscape)
    return f"{'L' if getattr(fn, 'data', None) is not None else 'f(x, y)'} = {fn.formula}"


def render_session(session: Session, video: str | os.PathLike | None = None, csv_dir: str | os.PathLike | None = None,
                   fps: int | None = None, steps_per_frame: int | None = None, size: str | tuple[int, int] = "720p",
                   theme: str | None = None, title: str | None = None, equation: bool | str = True,
                   seconds: float | None = None, view: str | None = None,
                   progress: Callable[[int, str], None] | None = None, show_progress: bool = False) -> RenderResult:
    """Render a session's view: a clip (``video``: .mp4 or .gif) and/or CSVs (``csv_dir``).

    The clip shows exactly ``steps_per_frame`` more steps per frame (default: the session's display
    settings) at ``fps``; with ``seconds`` it has ``round(seconds * fps)`` frames (holding the last
    state if the run ends first), otherwise it ends on the frame showing the run's last step. CSVs always
    hold the whole run. ``title`` defaults to the session's; ``equation`` (2D only) True shows the
    function's formula, a string shows that text, False nothing.
    """
    view = view or session.view
    fps = int(fps or session.display.fps)
    spf = int(steps_per_frame or session.display.steps_per_frame)
    th = get_theme(theme or session.display.theme)
    width, height = parse_size(size)
    title = session.title if title is None else title
    eq = ""
    if view == "landscape" and equation:
        eq = equation if isinstance(equation, str) else function_equation(session)
    files: list[Path] = []
    csv_dir = Path(csv_dir) if csv_dir is not None else None

    if view == "landscape":
        stream: LandscapeStream | MnistStream = LandscapeStream(
            session.landscape, csv_dir / "trajectories.csv" if csv_dir else None)
    else:
        stream = MnistStream(session.mnist_runs, csv_dir)
    total = stream.total_steps
    n_frames = int(round(seconds * fps)) if seconds else None
    plan = frame_steps(total, spf, n_frames)
    bar = Progress(len(plan) if video else total, "render" if video else "run", enabled=show_progress)
    writer = None
    try:
        if video is not None:
            app = ensure_app()
            if view == "landscape":
                from engine.render import landscape_ranges
                fmin = stream.function.min_value
                probe = LandscapeScene._fmin(stream.function, session.landscape) if fmin is None else fmin
                scene = LandscapeScene(stream, th, ranges=landscape_ranges(session.landscape, int(plan[-1]), probe))
            else:
                scene = MnistScene(stream, th)
            painter = FramePainter(width, height, th, title, eq)
            scene.resize(*_base_size(width, height, painter.header))
            scene.ensurePolished()
            app.processEvents()
            painter.paint(scene)  # a first paint measures tick labels; the layout then makes room for them
            app.processEvents()
            writer = VideoWriter(video, width, height, fps, pixel_format="bgra", threaded=True)
            for i, step in enumerate(plan):
                stream.advance_to(int(step))
                scene.draw()
                if scene.axes_move:  # an axis whose labels change may need room: let the layout follow
                    app.processEvents(QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
                writer.write(painter.paint(scene))
                bar(i + 1)
                if progress:
                    progress(i + 1, "")
            files.append(writer.close())
            writer = None
            scene.close()
            scene.deleteLater()
        else:
            chunk = max(1, total // 100)
            target = 0
            while not stream.done:
                target += chunk
                stream.advance_to(target)
                bar(min(target, total))
                if progress:
                    progress(min(target, total), "")
        done = stream.finish()
        if csv_dir is not None:
            if view == "landscape":
                files.append(done)
            else:
                files += [csv_dir / "steps.csv", csv_dir / "evals.csv", done]
            files.append(write_session_copy(session.replace(view=view), csv_dir))
    except BaseException:
        if writer is not None:
            writer.abort()
        stream.abort()
        raise
    return RenderResult(files[0] if video is not None else None, files, len(plan) if video else 0, spf, fps,
                        (width, height))


# ---- `python -m gui.recording`: what `python main.py render` runs in a process of its own ---------------------------

def main(argv: Sequence[str] | None = None) -> int:
    """Render a session (file or preset name) headless. Exit 0, 2 for a refused input."""
    import argparse

    from engine.render import add_render_arguments

    parser = argparse.ArgumentParser(prog="python main.py render")
    add_render_arguments(parser)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up as Ctrl-C does: no half-written clip
    return render_from_args(args)


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def render_from_args(args) -> int:
    from engine.render import check_render_args, probe_video, session_for_args
    from engine.session import SessionError

    try:
        check_render_args(args)
        session = session_for_args(args)
        result = render_session(session, video=args.video, csv_dir=args.csv, fps=args.fps,
                                steps_per_frame=args.steps_per_frame, size=args.size, theme=args.theme,
                                title=args.title, equation=not args.no_equation, seconds=args.seconds,
                                view=args.view, show_progress=not args.quiet)
    except (ConfigError, SessionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if result.video is not None:
        info = probe_video(result.video)
        print(f"wrote {result.video}: {info['frames']} frames, {info['width']}x{info['height']}, "
              f"{result.fps} fps, {result.steps_per_frame} steps per frame")
    for f in result.files:
        if f != result.video:
            print(f"wrote {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
