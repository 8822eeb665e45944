"""Plot widgets with the app's defaults (plain axis numbers, grid, optional legend), and the pieces that let
the 2D race draw a frame for about the cost of what changed in it: raster layers for a cloud's trails and
for whole paths (new segments only), several curves in one item, curve ranges that only grow, a scatter
item that works out its bounding rect once a change, and segment clipping that keeps directions."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QLineF, QPoint, QRect, QRectF, Qt
from PySide6.QtGui import QAction, QColor, QImage, QPainter, QPaintEngine, QPen


def make_plot(title: str = "", left: str = "", bottom: str = "", log_y: bool = False, legend: bool = False
              ) -> pg.PlotWidget:
    w = pg.PlotWidget(title=title or None)
    if left:
        w.setLabel("left", left)
    if bottom:
        w.setLabel("bottom", bottom)
    for name in ("left", "bottom"):
        # "x0.001" axis prefixes hide a learning rate's real value; show plain numbers.
        w.getAxis(name).enableAutoSIPrefix(False)
    w.setLogMode(False, log_y)
    w.showGrid(x=True, y=True, alpha=0.2)
    # Long curves are decimated by gui.series.decimate before setData (see there for why not
    # pyqtgraph's clip-to-view + auto-downsampling).
    if legend:
        w.addLegend(offset=(-10, 10))
    use_own_export_menu(w)
    return w


def use_own_export_menu(w: pg.PlotWidget) -> None:
    """The right-click menu's "Export..." opens the app's exporter (gui.export.export_plot), not pyqtgraph's
    dialog, whose image exporter moves markers at other sizes and whose SVG exporter crashes with this
    PySide6."""
    scene = w.scene()
    action = QAction("Export plot as PNG or SVG...", scene)
    action.triggered.connect(lambda: export_plot_dialog(w))
    scene.contextMenu = [action]


def export_plot_dialog(w: pg.PlotWidget) -> None:
    from PySide6.QtWidgets import QFileDialog, QMessageBox

    from .export import export_plot
    path, _ = QFileDialog.getSaveFileName(w, "Export plot", "plot.png", "PNG image (*.png);;SVG vector (*.svg)")
    if not path:
        return
    try:
        export_plot(w, path)
    except Exception as exc:  # a bad name or an unwritable folder: say so, keep the plot as it is
        QMessageBox.warning(w, "Optiscope", f"Could not export the plot: {exc}")


def _exit_points(x0, y0, x1, y1, box):
    """Where segments starting at (x0, y0) leave ``box`` = (left, right, top, bottom) heading to (x1, y1),
    measured from the start, so a start inside stays exact however far the end is; and whether they meet
    the box at all (Liang-Barsky)."""
    dx, dy = x1 - x0, y1 - y0
    t0 = np.zeros(len(x0))
    t1 = np.ones(len(x0))
    miss = np.zeros(len(x0), dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for p, q in ((-dx, x0 - box[0]), (dx, box[1] - x0), (-dy, y0 - box[2]), (dy, box[3] - y0)):
            r = q / p
            t0 = np.where(p < 0, np.maximum(t0, r), t0)
            t1 = np.where(p > 0, np.minimum(t1, r), t1)
            miss |= (p == 0) & (q < 0)
        miss |= t0 > t1
        return x0 + t1 * dx, y0 + t1 * dy, miss


def clip_segments(lines: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """Segments (m, 4) of finite pixel coordinates cut to ``box`` (left, right, top, bottom), direction kept;
    those that miss it are dropped. Each end is computed from the nearer end point, so a segment from a
    point in view to one 1e30 pixels away keeps its direction exactly (clamping the coordinates would not)."""
    x0, y0, x1, y1 = lines.T
    ex, ey, miss = _exit_points(x0, y0, x1, y1, box)  # the end, seen from the start
    sx, sy, _ = _exit_points(x1, y1, x0, y0, box)  # the start, seen from the end
    with np.errstate(invalid="ignore"):
        start_in = (x0 >= box[0]) & (x0 <= box[1]) & (y0 >= box[2]) & (y0 <= box[3])
        end_in = (x1 >= box[0]) & (x1 <= box[1]) & (y1 >= box[2]) & (y1 <= box[3])
    out = np.stack([np.where(start_in, x0, sx), np.where(start_in, y0, sy),
                    np.where(end_in, x1, ex), np.where(end_in, y1, ey)], axis=1)
    return out[~miss]


def column_extremes(x: np.ndarray, y: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """A curve for a plot ``columns`` pixels wide: each of ``columns`` buckets of consecutive points becomes
    its minimum and maximum (NaN where it has none), at the bucket's first x, the newest point kept last.

    A 1-pixel line through a pixel column's min and max covers what all of its points would; order within
    a bucket does not show at that width. Reductions over a reshaped array: cheap enough to run every frame
    on already decimated curves (a few thousand points)."""
    n = len(x)
    if n <= 2 * columns + 1:
        return x, y
    width = n // columns
    used = width * columns
    yy = y[:used].reshape(columns, width)
    with np.errstate(invalid="ignore"):
        lo, hi = np.fmin.reduce(yy, axis=1), np.fmax.reduce(yy, axis=1)  # NaN only where all are
    xs = x[:used:width]
    tail = slice(used, n) if used < n else slice(n - 1, n)  # the newest point ends the curve, where it is
    out_x = np.concatenate([np.repeat(xs, 2), x[tail]])
    out_y = np.concatenate([np.stack([lo, hi], axis=1).ravel(), y[tail]])
    return out_x, out_y


def cache_axes(plot: pg.PlotWidget) -> None:
    """Paint the axes (and the grid they draw) from a pixmap cached by Qt, redrawn only when they change.

    A changing curve dirties the whole plot area, which the grid lines of both axes cover: without a
    cache each frame replays every axis's QPicture (about a millisecond each) though nothing on it moved.
    """
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getPlotItem().getAxis(name)
        axis.setCacheMode(axis.CacheMode.DeviceCoordinateCache)


class HeadsItem(pg.ScatterPlotItem):
    """A scatter item whose bounding rect is worked out once per change of its points or of the view.

    Qt asks an item for its bounding rect several times a frame (update, index, paint); pyqtgraph's
    scatter item recomputes it each time, pixel vectors included: for 8 clouds of heads moved every
    frame that adds up to milliseconds. Everything that moves the points calls prepareGeometryChange."""

    _rect: QRectF | None = None

    def boundingRect(self) -> QRectF:
        if self._rect is None:
            self._rect = super().boundingRect()
        return self._rect

    def prepareGeometryChange(self) -> None:
        self._rect = None
        super().prepareGeometryChange()

    def viewTransformChanged(self) -> None:
        self._rect = None
        super().viewTransformChanged()

    def _updateMaxSpotSizes(self, **kwargs) -> None:  # the symbols' size is the rect's margin
        self._rect = None
        super()._updateMaxSpotSizes(**kwargs)


class GrowingRanges:
    """The range of a curve plot while a run plays: x from 0 to a bound that doubles (capped at the run's
    length), y only ever widened, with a margin.

    An auto range follows every new point, so the axes change their ticks, re-lay out and repaint each
    frame; ranges that move only when the data leaves them leave the axes alone for most frames. When the
    user pans or zooms (the range is no longer the one set here), the plot is theirs until ``reset``.
    """

    def __init__(self, plot: pg.PlotWidget, log_y: bool = False):
        self.vb = plot.getPlotItem().vb
        self.log_y = log_y  # the view's y is log10 of the values: margins in decades
        self.reset()

    def reset(self) -> None:
        self.x_hi: float | None = None
        self.y: tuple[float, float] | None = None
        self._set: tuple | None = None
        self.vb.enableAutoRange()
        # Empty, pyqtgraph's default range is 0..1 in view units: one decade on a log axis, labelled 2, 3, ... 9
        # with no power of ten. Four decades read as a log axis; the first data sets the real range.
        self.vb.setRange(xRange=(0.0, 1.0), yRange=(-3.0, 1.0) if self.log_y else (0.0, 1.0), padding=0)

    def _user_moved(self) -> bool:
        if self._set is None:
            return False
        (x0, x1), (y0, y1) = self.vb.viewRange()
        want = self._set
        tol = 1e-9 * max(1.0, abs(want[1] - want[0]), abs(want[3] - want[2]))
        return any(abs(a - b) > tol for a, b in zip((x0, x1, y0, y1), want))

    def update(self, step: float, total: float, y_lo: float, y_hi: float) -> None:
        """``step``: the newest step; ``total``: the run's length; ``y_lo``, ``y_hi``: the data's extent in
        view units (log10 of the values on a log axis), NaN when there is none yet."""
        if self._user_moved():
            return
        x_hi = self.x_hi
        if x_hi is None or step > x_hi:
            x_hi = min(float(total), max(16.0, 2.0 * x_hi if x_hi else 16.0, 1.25 * step))
            if x_hi < step:  # past the configured length
                x_hi = 1.5 * step
        y = self.y
        if np.isfinite(y_lo) and np.isfinite(y_hi):
            if y is None or y_lo < y[0] or y_hi > y[1]:
                lo, hi = (y_lo, y_hi) if y is None else (min(y_lo, y[0]), max(y_hi, y[1]))
                pad = max(0.25 * (hi - lo), 0.15 if self.log_y else 1e-12 + 0.05 * max(abs(lo), abs(hi)))
                y = (lo - pad if y is None or y_lo < y[0] else lo, hi + pad if y is None or y_hi > y[1] else hi)
        if x_hi == self.x_hi and y == self.y:
            return
        self.x_hi, self.y = x_hi, y
        x_lo = -0.02 * x_hi  # step 0 a little inside, so its tick is labelled
        if y is None:  # nothing to show on y yet: it stays automatic
            self.vb.setXRange(x_lo, x_hi, padding=0)
            self.vb.enableAutoRange(y=True)
            self._set = None
            return
        self.vb.setRange(xRange=(x_lo, x_hi), yRange=y, padding=0)
        (x0, x1), (y0, y1) = self.vb.viewRange()
        self._set = (x0, x1, y0, y1)


class PixelLayer(pg.GraphicsObject):
    """Base of the map's raster layers: images in the device pixels of the view box (row 0 at the top),
    painted 1:1 over the view, in the view's data coordinates (so z-order among plot items holds).

    ``_key`` is the (view range, pixel size) the images were drawn for; when the view changes, the layer
    redraws itself from its source (``refresh``)."""

    def __init__(self, view_box: pg.ViewBox):
        super().__init__()
        self.vb = view_box
        self._key: tuple | None = None
        self._ratio = 1.0  # device pixels per logical pixel of the view: pens are scaled by it
        view_box.sigRangeChanged.connect(self._view_changed)
        view_box.sigResized.connect(self._view_changed)

    def refresh(self) -> None:
        raise NotImplementedError

    def layers(self) -> list[tuple[QImage, float, QRect | None]]:
        """(image, opacity, the part of it that holds anything or None for all of it) to paint, bottom first."""
        raise NotImplementedError

    def _view_changed(self, *_) -> None:
        self.prepareGeometryChange()  # the bounding rect is the view's range
        if self._key is not None:
            self.refresh()

    def _pixel_size(self) -> tuple[int, int]:
        ratio = 1.0
        views = self.scene().views() if self.scene() is not None else []
        if views:
            ratio = views[0].devicePixelRatioF()
        self._ratio = ratio
        rect = self.vb.boundingRect()
        return max(1, int(round(rect.width() * ratio))), max(1, int(round(rect.height() * ratio)))

    def _view_key(self) -> tuple:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return (x0, x1, y0, y1) + self._pixel_size()

    def _new_image(self) -> QImage:
        w, h = self._key[-2:]
        image = QImage(w, h, QImage.Format_ARGB32_Premultiplied)
        image.fill(0)
        return image

    def _to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Data to image pixels (row 0 at the top)."""
        x0, x1, y0, y1, w, h = self._key
        with np.errstate(invalid="ignore", over="ignore"):
            return (x - x0) * (w / (x1 - x0)), (y1 - y) * (h / (y1 - y0))

    def _box(self) -> tuple[float, float, float, float]:
        """The image with a margin wider than any pen: what lies beyond is cut off before QPainter sees it
        (a diverging trajectory's coordinates overflow its fixed-point rasteriser)."""
        w, h = self._key[-2:]
        return -16.0, w + 16.0, -16.0, h + 16.0

    def _inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        left, right, top, bottom = self._box()
        with np.errstate(invalid="ignore"):
            return (x >= left) & (x <= right) & (y >= top) & (y <= bottom)

    def boundingRect(self) -> QRectF:
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def dataBounds(self, *_args, **_kw):  # never widens an auto range
        return None

    def paint_layers(self) -> list[tuple[QImage, float, QRect | None]]:
        """What ``paint`` blits: ``layers()`` unless a layer can merge some of them ahead of time."""
        return self.layers()

    def paint(self, painter: QPainter, *_args) -> None:
        layers = self.paint_layers()
        if not layers:
            return
        if self._key != self._view_key():  # resized before the signal reached us: redraw for this view
            self.refresh()
            layers = self.paint_layers()
            if not layers or self._key != self._view_key():
                return
        target = painter.transform().mapRect(self.boundingRect())
        engine = painter.paintEngine()
        ratio = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        w, h = self._key[-2:]
        if engine is None or engine.type() != QPaintEngine.Type.Raster or \
                abs(target.width() * ratio - w) > 1.5 or abs(target.height() * ratio - h) > 1.5:
            # Not the screen's pixels (an SVG, or a PNG export at another size): lines, not a scaled image.
            self.paint_vectors(painter)
            return
        painter.save()
        painter.resetTransform()
        for image, opacity, part in layers:
            painter.setOpacity(opacity)
            if part is None:
                painter.drawImage(target, image)
            elif not part.isEmpty():  # blending costs per pixel: only the part that was drawn on
                sx, sy = target.width() / image.width(), target.height() / image.height()
                painter.drawImage(QRectF(target.x() + part.x() * sx, target.y() + part.y() * sy,
                                         part.width() * sx, part.height() * sy), image, QRectF(part))
        painter.restore()

    def paint_vectors(self, painter: QPainter) -> None:
        """Draw the layer's content as lines with the painter's own (data to device) transform."""
        raise NotImplementedError

    def _data_box(self) -> tuple[float, float, float, float]:
        """The view's range with a margin, in data units: lines are cut to it before a vector painter sees
        them (far-away coordinates are not what an SVG or the rasteriser handles well)."""
        (x0, x1), (y0, y1) = self.vb.viewRange()
        mx, my = 0.05 * (x1 - x0), 0.05 * (y1 - y0)
        return x0 - mx, x1 + mx, y0 - my, y1 + my

    def _cut(self, lines: np.ndarray) -> np.ndarray:
        """Finite segments (m, 4) in data units, cut to ``_data_box``."""
        lines = lines[np.isfinite(lines).all(axis=1)]
        return clip_segments(lines, self._data_box()) if len(lines) else lines

    def composite(self) -> QImage:
        """The layer as painted, on transparent black, in its images' pixels (for tests)."""
        w, h = self._key[-2:] if self._key else (1, 1)
        out = QImage(w, h, QImage.Format_ARGB32_Premultiplied)
        out.fill(0)
        p = QPainter(out)
        for image, opacity, _ in self.layers():
            p.setOpacity(opacity)
            p.drawImage(0, 0, image)
        p.end()
        return out


class TrailLayer(PixelLayer):
    """A cloud's fading trails as images in the map's own pixels, so a frame draws only its new segments.

    Drawing every particle's last TRAIL_STEPS segments each frame costs O(trail length x particles) in
    QPainter.drawLines (8 x 1,000 x 20 = 160,000 segments, the largest part of a cloud frame). Here the
    segments of ``bands`` consecutive blocks of ``band_steps`` steps each go into their own image (a ring:
    the block after the newest reuses the oldest one's image, cleared), and painting blits the images
    with the opacity of their age, oldest faintest, as the age bands of line items did. A segment is
    drawn once, when its step arrives; the images are redrawn from ``source`` (the history's ring of recent
    positions) only when the view's range or size changes, or the steps do not follow on.
    """

    def __init__(self, view_box: pg.ViewBox, bands: int, band_steps: int):
        super().__init__(view_box)
        self.bands, self.band_steps = int(bands), int(band_steps)
        self.colours: list[QColor] = []
        self.source: Callable[[], tuple[np.ndarray, int] | None] | None = None  # () -> (trail, newest step)
        self.images: list[QImage | None] = [None] * self.bands
        self.block_of: list[int | None] = [None] * self.bands  # which block of steps each image holds
        self.parts: list[QRect] = [QRect() for _ in range(self.bands)]  # what each image holds lies in this
        self._drawn_step: int | None = None  # newest step drawn into the images
        self._lines = pg.Qt.internals.PrimitiveArray(QLineF, 4)
        # The older blocks merged into one image at their ages' opacities: they change only when the newest
        # block rolls over, so a frame blits two images at full opacity instead of ``bands`` faded ones
        # (each blit of a map-sized image costs most of a millisecond).
        self._older: tuple[tuple, QImage, QRect] | None = None  # (what it was made of, image, part)
        self._generation = 0  # bumped whenever the images are redrawn from scratch

    # ---- inputs ----
    def set_colours(self, colours: list) -> None:
        """One colour per optimiser (index j of the trail's second axis)."""
        self.colours = [pg.mkColor(c) for c in colours]
        self.clear()

    def opacity(self, age: int) -> float:
        """The opacity of a segment in the block ``age`` blocks before the newest: 1/(bands+1) steps down."""
        return (self.bands - age) / (self.bands + 1)

    @property
    def _pens(self) -> list[QPen]:
        """Segments go into the images at the newest block's opacity, and each image is blitted at its age's
        opacity divided by that: so segments that cross in one block add up as translucent lines do, and
        a segment ends at its age's opacity, as line items of that opacity would draw it."""
        pens = []
        for c in self.colours:
            c = QColor(c)
            c.setAlphaF(self.opacity(0))
            pens.append(pg.mkPen(c, width=self._ratio))
        return pens

    def clear(self) -> None:
        self.images = [None] * self.bands
        self.block_of = [None] * self.bands
        self._generation += 1
        self._drawn_step = None
        self._key = None  # nothing drawn for any view: a view change has nothing to redraw
        self.update()

    def refresh(self) -> None:
        """Draw what ``source`` holds that is not drawn yet (everything, when the view changed)."""
        got = self.source() if self.source is not None else None
        if got is None:
            self.clear()
            return
        trail, newest = got
        if self._key != self._view_key() or self._drawn_step is None or newest < self._drawn_step:
            self._redraw_all(trail, newest)
        elif newest > self._drawn_step:
            self._draw_steps(trail, newest, self._drawn_step + 1)
        self.update()

    # ---- drawing into the images ----
    def _block(self, step: int) -> int:
        return (step - 1) // self.band_steps  # the segment that ends at ``step`` starts at step - 1

    def _image_for(self, block: int) -> QImage:
        slot = block % self.bands
        if self.block_of[slot] != block or self.images[slot] is None:
            image = self.images[slot]
            if image is None or (image.width(), image.height()) != self._key[-2:]:
                image = self._new_image()
            image.fill(0)
            self.images[slot], self.block_of[slot], self.parts[slot] = image, block, QRect()
        return self.images[slot]

    def _redraw_all(self, trail: np.ndarray, newest: int) -> None:
        self._key = self._view_key()
        self._generation += 1
        self.images = [None] * self.bands
        self.block_of = [None] * self.bands
        oldest_block = self._block(newest) - self.bands + 1
        first = max(newest - len(trail) + 2, oldest_block * self.band_steps + 1)
        self._drawn_step = newest
        if first <= newest:
            self._draw_steps(trail, newest, first)

    def _draw_steps(self, trail: np.ndarray, newest: int, first: int) -> None:
        """Segments ending at steps first..newest; ``trail[-1]`` is the position at step ``newest``."""
        first = max(first, newest - len(trail) + 2)
        step = first
        pens = self._pens
        while step <= newest:
            block = self._block(step)
            last = min(newest, (block + 1) * self.band_steps)
            a = len(trail) - 1 - (newest - step) - 1  # index of the position at step - 1
            b = a + (last - step) + 1  # index of the position at ``last``
            seg = trail[a:b + 1]  # (m + 1, K, n, 2)
            px, py = self._to_pixels(seg[..., 0], seg[..., 1])
            painter = QPainter(self._image_for(block))
            try:
                for j in range(min(seg.shape[1], len(self.colours))):
                    lines = np.stack([px[:-1, j], py[:-1, j], px[1:, j], py[1:, j]], axis=-1).reshape(-1, 4)
                    lines = lines[np.isfinite(lines).all(axis=1)]
                    out = ~(self._inside(lines[:, 0], lines[:, 1]) & self._inside(lines[:, 2], lines[:, 3]))
                    if out.any():
                        lines = np.concatenate([lines[~out], clip_segments(lines[out], self._box())])
                    if not len(lines):
                        continue
                    self._lines.resize(len(lines))
                    self._lines.ndarray()[:] = lines
                    painter.setPen(pens[j])
                    painter.drawLines(*self._lines.drawargs())
                    xs, ys = lines[:, 0::2], lines[:, 1::2]
                    slot = block % self.bands
                    self.parts[slot] = self.parts[slot].united(QRect(
                        QPoint(int(xs.min()) - 2, int(ys.min()) - 2), QPoint(int(xs.max()) + 2, int(ys.max()) + 2)))
            finally:
                painter.end()
            step = last + 1
        self._drawn_step = newest

    # ---- painting ----
    def paint_vectors(self, painter: QPainter) -> None:
        """The blocks in the trail window as lines, each at its age's opacity (as the images would be)."""
        got = self.source() if self.source is not None else None
        if got is None or self._drawn_step is None:
            return
        trail, newest = got
        newest_block = self._block(newest)
        lines = pg.Qt.internals.PrimitiveArray(QLineF, 4)
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing, False)
        for age in range(self.bands - 1, -1, -1):
            block = newest_block - age
            first = max(block * self.band_steps + 1, newest - len(trail) + 2)
            last = min((block + 1) * self.band_steps, newest)
            if first > last:
                continue
            a = len(trail) - 2 - (newest - first)
            seg = trail[a:a + (last - first) + 2]
            for j in range(min(seg.shape[1], len(self.colours))):
                cut = self._cut(np.stack([seg[:-1, j, :, 0], seg[:-1, j, :, 1], seg[1:, j, :, 0], seg[1:, j, :, 1]],
                                         axis=-1).reshape(-1, 4).astype(np.float64))
                if not len(cut):
                    continue
                c = QColor(self.colours[j])
                c.setAlphaF(self.opacity(age))
                painter.setPen(pg.mkPen(c, width=1))
                lines.resize(len(cut))
                lines.ndarray()[:] = cut
                painter.drawLines(*lines.drawargs())
        painter.restore()

    def layers(self) -> list[tuple[QImage, float, QRect]]:
        """(image, opacity, part drawn on) of the blocks in the trail window, oldest first."""
        if self._drawn_step is None:
            return []
        newest = self._block(self._drawn_step)
        out = []
        for age in range(self.bands - 1, -1, -1):
            block = newest - age
            slot = block % self.bands
            if self.block_of[slot] == block and self.images[slot] is not None:
                part = self.parts[slot].intersected(self.images[slot].rect())
                out.append((self.images[slot], self.opacity(age) / self.opacity(0), part))
        return out

    def paint_layers(self) -> list[tuple[QImage, float, QRect]]:
        """The older blocks as one image (remade when the newest block rolls over or the images are redrawn),
        then the newest block: the same pixels as ``layers()`` blitted in turn (source-over is associative)."""
        layers = self.layers()
        if len(layers) <= 2:
            return layers
        older, newest = layers[:-1], layers[-1]
        made_of = (self._generation, self._block(self._drawn_step), self._key)
        if self._older is None or self._older[0] != made_of:
            image = self._older[1] if self._older is not None else None
            if image is None or (image.width(), image.height()) != self._key[-2:]:
                image = self._new_image()
            image.fill(0)
            part = QRect()
            p = QPainter(image)
            for layer, opacity, drawn in older:
                if drawn.isEmpty():
                    continue
                p.setOpacity(opacity)
                p.drawImage(drawn.topLeft(), layer, drawn)
                part = part.united(drawn)
            p.end()
            self._older = (made_of, image, part)
        _, image, part = self._older
        return [(image, 1.0, part), newest]



class PathTrack:
    """What the path layer draws for one trajectory, with a plot item's ``getData`` (for tests and tools)."""

    def __init__(self, layer: "PathLayer", j: int):
        self.layer, self.j = layer, j

    def getData(self) -> tuple[np.ndarray, np.ndarray]:
        got = self.layer.source(self.j) if self.layer.source is not None else None
        return got if got is not None else (np.zeros(0), np.zeros(0))


class PathLayer(PixelLayer):
    """Whole trajectories (one start point per optimiser) as one image in the map's pixels.

    Stroking a long path with an antialiased 2-pixel pen costs a few microseconds a segment
    (8 paths x 2,000 points: about 80 ms a paint), however little of it changed. Here each frame strokes
    only the segments of its new steps into the image, and painting is one blit. The image is redrawn
    from ``source`` (the history's thinned path of each trajectory) when the view's range or size
    changes or the steps do not follow on; so the newest steps are drawn at full resolution, and a
    redraw at most MAX_PATH_POINTS points per path.
    """

    def __init__(self, view_box: pg.ViewBox, width: float = 2.0):
        super().__init__(view_box)
        self.width = width
        self.pens: list[QPen] = []
        self.source: Callable[[int], tuple[np.ndarray, np.ndarray] | None] | None = None  # j -> (x, y)
        self.image: QImage | None = None
        self._drawn_step: int | None = None
        self._ends: list[np.ndarray | None] = []  # per path: the last point drawn, where the next segment starts
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # (steps (m,), points (m, K, 2)) to draw next

    def set_colours(self, colours: list) -> None:
        self.pens = [pg.mkPen(c, width=self.width) for c in colours]
        for pen in self.pens:
            pen.setCapStyle(Qt.RoundCap)
            pen.setJoinStyle(Qt.RoundJoin)
        self.clear()

    def tracks(self) -> list[PathTrack]:
        return [PathTrack(self, j) for j in range(len(self.pens))]

    def clear(self) -> None:
        self.image = None
        self._drawn_step = None
        self._pending = None
        self._ends = [None] * len(self.pens)
        self._key = None  # nothing drawn for any view: a view change has nothing to redraw
        self.update()

    def extend(self, steps: np.ndarray, points: np.ndarray) -> None:
        """New positions, ``points[t, j]`` of path j at ``steps[t]``; drawn by the next ``refresh``."""
        if self._pending is not None and len(self._pending[0]) and len(steps) and \
                steps[0] == self._pending[0][-1] + 1:
            steps, points = np.concatenate([self._pending[0], steps]), np.concatenate([self._pending[1], points])
        self._pending = (np.asarray(steps), np.asarray(points, dtype=np.float64))

    def has_pending(self) -> bool:
        return self._pending is not None

    def refresh(self, newest: int | None = None) -> None:
        """Stroke the pending new steps (or everything afresh when they do not follow on, or the view changed)."""
        pending, self._pending = self._pending, None
        if self.source is None or not self.pens:
            self.clear()
            return
        if newest is None:
            newest = self._drawn_step
        follows = (pending is not None and self._drawn_step is not None and len(pending[0])
                   and pending[0][0] == self._drawn_step + 1 and pending[0][-1] == newest)
        if self._key != self._view_key() or self.image is None or newest is None or not (
                follows or newest == self._drawn_step):
            self._redraw_all(newest)
        elif follows:
            self._stroke([pending[1][:, j] for j in range(min(pending[1].shape[1], len(self.pens)))])
            self._drawn_step = newest
        self.update()

    def _redraw_all(self, newest: int | None) -> None:
        self._key = self._view_key()
        self.image = self._new_image()
        self._ends = [None] * len(self.pens)
        paths = []
        for j in range(len(self.pens)):
            got = self.source(j)
            paths.append(np.zeros((0, 2)) if got is None else np.column_stack(got).astype(np.float64))
        self._stroke(paths)
        self._drawn_step = newest

    def _stroke(self, new_points: list[np.ndarray]) -> None:
        """Continue each path j from where it ends through ``new_points[j]`` (n, 2); NaN points break it."""
        painter = QPainter(self.image)
        painter.setRenderHint(QPainter.Antialiasing, True)
        try:
            for j, pts in enumerate(new_points):
                if not len(pts):
                    continue
                end = self._ends[j]
                if end is not None:
                    pts = np.concatenate([end[None], pts])
                self._ends[j] = pts[-1]
                x, y = self._to_pixels(pts[:, 0], pts[:, 1])
                if len(x) < 2:
                    continue
                inside = self._inside(x, y)
                if not inside.all():  # points beyond the view: the segments to them are cut at its edge
                    finite = np.isfinite(x) & np.isfinite(y)
                    cut = ~(inside[:-1] & inside[1:]) & finite[:-1] & finite[1:]
                    lines = clip_segments(np.stack([x[:-1], y[:-1], x[1:], y[1:]], axis=1)[cut], self._box())
                    gaps = np.full((len(lines), 2), np.nan)
                    extra = np.concatenate([gaps, lines[:, :2], lines[:, 2:]], axis=1).reshape(-1, 2)
                    x = np.concatenate([np.where(inside, x, np.nan), extra[:, 0]])
                    y = np.concatenate([np.where(inside, y, np.nan), extra[:, 1]])
                pen = QPen(self.pens[j])
                pen.setWidthF(self.width * self._ratio)
                painter.setPen(pen)
                painter.drawPath(pg.arrayToQPath(x, y, connect="finite"))
        finally:
            painter.end()

    def layers(self) -> list[tuple[QImage, float, QRect | None]]:
        return [(self.image, 1.0, None)] if self.image is not None and self._drawn_step is not None else []

    def paint_vectors(self, painter: QPainter) -> None:
        """Each path as a polyline of the source's points (segments leaving the view cut at its edge)."""
        if self.source is None:
            return
        box = self._data_box()
        painter.save()
        painter.setRenderHint(QPainter.Antialiasing, True)
        for j, pen in enumerate(self.pens):
            got = self.source(j)
            if got is None or len(got[0]) < 2:
                continue
            x, y = (np.asarray(v, dtype=np.float64) for v in got)
            with np.errstate(invalid="ignore"):
                inside = (x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3])
            if not inside.all():
                finite = np.isfinite(x) & np.isfinite(y)
                cut = ~(inside[:-1] & inside[1:]) & finite[:-1] & finite[1:]
                lines = clip_segments(np.stack([x[:-1], y[:-1], x[1:], y[1:]], axis=1)[cut], box)
                extra = np.concatenate([np.full((len(lines), 2), np.nan), lines], axis=1).reshape(-1, 2)
                x = np.concatenate([np.where(inside, x, np.nan), extra[:, 0]])
                y = np.concatenate([np.where(inside, y, np.nan), extra[:, 1]])
            painter.setPen(pen)
            painter.drawPath(pg.arrayToQPath(x, y, connect="finite"))
        painter.restore()


class CurveHandle:
    """One curve of a ``CurveSet``, with a plot item's ``setData`` / ``getData``."""

    def __init__(self, owner: "CurveSet", index: int):
        self.owner, self.index = owner, index

    def setData(self, x, y) -> None:
        self.owner.set_curve(self.index, x, y)

    def getData(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.owner.data[self.index]


class CurveSet(pg.GraphicsObject):
    """Several 1-pixel curves of different colours in one plot item, for plots redrawn every frame.

    Each pyqtgraph curve item costs its own bounds, pixel-size and paint bookkeeping per frame, whatever
    its length (8 optimisers x 3 plots = 24 items: a sizeable part of a frame). One item holding all of a
    plot's curves pays that once, and paints each curve as line segments (as PlotCurveItem does for
    1-pixel pens without antialiasing). Values are in view coordinates (log10 already taken on a log axis);
    NaN breaks a curve.
    """

    def __init__(self):
        super().__init__()
        self.pens: list[QPen] = []
        self.data: list[tuple[np.ndarray | None, np.ndarray | None]] = []
        self._lines: list = []
        self._bounds: tuple | None = None
        self._rect: QRectF | None = None

    def set_pens(self, pens: list) -> list[CurveHandle]:
        self.pens = [pg.mkPen(p) for p in pens]
        self.data = [(None, None)] * len(self.pens)
        self._lines = [pg.Qt.internals.PrimitiveArray(QLineF, 4) for _ in self.pens]
        self._changed()
        return [CurveHandle(self, i) for i in range(len(self.pens))]

    def set_curve(self, i: int, x, y) -> None:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        self.data[i] = (x, y)
        lines = self._lines[i]
        if len(x) < 2:
            lines.resize(0)
        else:
            seg = np.stack([x[:-1], y[:-1], x[1:], y[1:]], axis=1)
            seg = seg[np.isfinite(seg).all(axis=1)]
            lines.resize(len(seg))
            lines.ndarray()[:] = seg
        self._changed()

    def _changed(self) -> None:
        self._bounds = None
        self._rect = None
        self.prepareGeometryChange()
        self.informViewBoundsChanged()
        self.update()

    def _data_bounds(self) -> tuple | None:
        if self._bounds is None:
            lo = [np.inf, np.inf]
            hi = [-np.inf, -np.inf]
            for lines in self._lines:
                if len(lines):
                    a = lines.ndarray()
                    lo = [min(lo[0], a[:, 0::2].min()), min(lo[1], a[:, 1::2].min())]
                    hi = [max(hi[0], a[:, 0::2].max()), max(hi[1], a[:, 1::2].max())]
            self._bounds = (lo, hi) if np.isfinite(lo[0]) else ()
        return self._bounds or None

    def dataBounds(self, ax: int, frac: float = 1.0, orthoRange=None):
        b = self._data_bounds()
        return (None, None) if b is None else (b[0][ax], b[1][ax])

    def boundingRect(self) -> QRectF:
        if self._rect is None:
            b = self._data_bounds()
            if b is None:
                self._rect = QRectF()
            else:
                (x0, y0), (x1, y1) = b
                px, py = self.pixelVectors()  # a pixel's margin for the pen, in data units
                mx = abs(px.x()) + abs(px.y()) if px is not None else 0.0
                my = abs(py.x()) + abs(py.y()) if py is not None else 0.0
                self._rect = QRectF(x0 - mx, y0 - my, (x1 - x0) + 2 * mx, (y1 - y0) + 2 * my)
        return self._rect

    def viewTransformChanged(self) -> None:
        self._rect = None
        self.prepareGeometryChange()

    def paint(self, painter: QPainter, *_args) -> None:
        painter.setRenderHint(QPainter.Antialiasing, False)
        for pen, lines in zip(self.pens, self._lines):
            if len(lines):
                painter.setPen(pen)
                painter.drawLines(*lines.drawargs())
