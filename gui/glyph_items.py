"""Glyphs at the head of each trajectory: what the optimiser carries, drawn on the map.

A handful of plot items made once and fed with ``setData``: one PlotDataItem per glyph kind holding
every arrow of that kind as NaN-separated segments (shaft and two barbs), plus a dark underlay so it
reads on both ends of the colour map; effective-lr ellipses are NaN-separated polylines. Arrowheads
are sized in pixels and re-laid out when the view is zoomed.

Scales. Arrows in gradient units (-g, -m_hat) share one display scale; displacements (the step taken,
-lr*b, the parts of an update and the ellipses) share another, so lengths within a group compare
directly. Each scale is a power of ten chosen so that the longest visible arrow is a readable length,
kept while it stays readable (no flicker), or fixed by the user; the legend shows it.

The effective-lr ellipse has semi-axes ``effective_lr * |d|`` per axis, where d is the direction the
optimiser rescales (m_hat for the Adam family, g otherwise): the steps a direction of that length
could produce. For Adam without weight decay the step taken lands exactly on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

ARROW_POINTS = 7  # per arrow: origin, tip, NaN, barb, tip, barb, NaN
ELLIPSE_POINTS = 41  # per ellipse: 40 vertices closing the loop, then NaN
HEAD_PX = 9.0
HEAD_ANGLE = math.radians(24)
TARGET_PX = 90.0  # auto scale aims the longest arrow of a group at about this many pixels ...
MIN_PX, MAX_PX = 30.0, 280.0  # ... and keeps its scale while the longest stays within these
SHADOW = (0, 0, 0, 150)


@dataclass(frozen=True)
class GlyphKind:
    key: str
    label: str  # short, for the toggle
    colour: str
    group: str  # "grad" or "disp": which display scale it shares
    help: str
    ellipse: bool = False


GLYPH_KINDS: tuple[GlyphKind, ...] = (
    GlyphKind("neg_grad", "−∇f", "#ff453a", "grad",
              "The negative gradient −g at the head: the direction of steepest descent (the gradient the "
              "optimiser receives, SGD's noise included)."),
    GlyphKind("step", "step", "#ffffff", "disp",
              "The step actually taken into the head, x_k − x_(k−1), drawn from the head."),
    GlyphKind("momentum", "−η·b", "#ff5ad6", "disp",
              "The momentum (velocity) buffer b from optimizer.state, times −lr: the displacement it alone "
              "causes. SGD momentum, Nesterov, RMSprop with momentum."),
    GlyphKind("first_moment", "−m/(1−β₁ᵗ)", "#3fe0ff", "grad",
              "Adam family: the bias-corrected first moment m̂ = m / (1 − β1^t), negated so that it points "
              "the way the step goes. Same scale as −∇f."),
    GlyphKind("effective_lr", "η eff", "#9dff3a", "disp",
              "Per-axis effective step size as an ellipse: semi-axes = effective lr per axis × |m̂| "
              "(|g| for non-Adam optimisers). Effective lr = lr/(√v̂+ε) for Adam/AdamW, lr/(√v+ε) for "
              "RMSprop, lr/(√G+ε) for Adagrad. Adam's step lands on it.", ellipse=True),
)
KINDS = {k.key: k for k in GLYPH_KINDS}

# Parts of one update (engine.glyphs.StepPart.key), for step-by-step mode.
PART_COLOURS = {
    "gradient": "#ff453a", "weight_decay": "#ffd60a", "decoupled_decay": "#9dff3a", "moment": "#3fe0ff",
    "velocity": "#ff5ad6", "lookahead": "#bf8cff", "sign_step": "#ffffff", "step": "#ffffff",
}
PART_FALLBACK = "#dddddd"
SUM_COLOUR = "#ffffff"


def part_colour(key: str) -> str:
    return PART_COLOURS.get(key, PART_FALLBACK)


def swatch_icon(colour: str, ellipse: bool = False, size: tuple[int, int] = (22, 14)) -> QIcon:
    """A small arrow (or ellipse) on a dark chip: the glyph's look, readable on light and dark themes."""
    w, h = size
    pix = QPixmap(w, h)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.Antialiasing)
    p.setBrush(QColor(40, 40, 60))
    p.setPen(Qt.NoPen)
    p.drawRoundedRect(0, 0, w, h, 3, 3)
    pen = QPen(QColor(colour), 2)
    p.setPen(pen)
    p.setBrush(Qt.NoBrush)
    if ellipse:
        p.drawEllipse(3, 3, w - 6, h - 6)
    else:
        y = h / 2
        p.drawLine(QPointF(3, y), QPointF(w - 4, y))
        p.drawLine(QPointF(w - 4, y), QPointF(w - 9, y - 4))
        p.drawLine(QPointF(w - 4, y), QPointF(w - 9, y + 4))
    p.end()
    return QIcon(pix)


# ---- geometry (numpy only; data coordinates in, NaN-separated polylines out) ----

def arrow_polyline(origins: np.ndarray, vectors: np.ndarray, pixel: tuple[float, float],
                   head_px: float = HEAD_PX) -> tuple[np.ndarray, np.ndarray]:
    """x, y of arrows ``origin -> origin + vector`` with pixel-sized barbs, ARROW_POINTS per arrow.

    Non-finite arrows are all NaN (nothing drawn); a zero-length arrow draws no barbs.
    ``pixel`` is the size of one screen pixel in data units (x, y).
    """
    o = np.asarray(origins, dtype=np.float64).reshape(-1, 2)
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 2)
    px = np.array(pixel, dtype=np.float64)
    tips = o + v
    out = np.full((len(o), ARROW_POINTS, 2), np.nan)
    ok = np.isfinite(o).all(1) & np.isfinite(v).all(1)
    out[ok, 0] = o[ok]
    out[ok, 1] = tips[ok]
    with np.errstate(invalid="ignore", divide="ignore"):
        d = v / px  # in pixels (y flipped on screen, which mirrors both barbs alike)
        length = np.linalg.norm(d, axis=1)
        barb = ok & (length > 1.0)
        u = d[barb] / length[barb, None]
        h = np.minimum(head_px, 0.5 * length[barb])[:, None]
    c, s = math.cos(HEAD_ANGLE), math.sin(HEAD_ANGLE)
    for col, sign in ((3, 1.0), (5, -1.0)):
        rot = np.stack([u[:, 0] * c - sign * u[:, 1] * s, sign * u[:, 0] * s + u[:, 1] * c], axis=1)
        out[barb, col] = tips[barb] - rot * h * px
    out[barb, 4] = tips[barb]
    flat = out.reshape(-1, 2)
    return flat[:, 0], flat[:, 1]


def ellipse_polyline(centres: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y of axis-aligned ellipses, ELLIPSE_POINTS per ellipse (closed loop, then NaN)."""
    c = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    r = np.asarray(radii, dtype=np.float64).reshape(-1, 2)
    t = np.linspace(0, 2 * math.pi, ELLIPSE_POINTS - 1)
    ring = np.stack([np.cos(t), np.sin(t)], axis=1)  # (P, 2)
    pts = c[:, None, :] + r[:, None, :] * ring[None]
    bad = ~(np.isfinite(c).all(1) & np.isfinite(r).all(1))
    pts[bad] = np.nan
    out = np.concatenate([pts, np.full((len(c), 1, 2), np.nan)], axis=1).reshape(-1, 2)
    return out[:, 0], out[:, 1]


def longest_px(vectors: Sequence[np.ndarray], pixel: tuple[float, float]) -> float:
    """Length in pixels of the longest finite vector among ``vectors`` at scale 1 (0 if none)."""
    best = 0.0
    px = np.array(pixel, dtype=np.float64)
    for v in vectors:
        arr = np.asarray(v, dtype=np.float64).reshape(-1, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            lengths = np.linalg.norm(arr / px, axis=1)
        lengths = lengths[np.isfinite(lengths)]
        if lengths.size:
            best = max(best, float(lengths.max()))
    return best


def auto_scale(current: float | None, longest: float, target: float = TARGET_PX, low: float = MIN_PX,
               high: float = MAX_PX) -> float | None:
    """A round scale (1, 2 or 5 times a power of ten) that shows an arrow of ``longest`` pixels (at scale 1)
    at about ``target`` pixels.

    Keeps ``current`` while the arrow stays between ``low`` and ``high`` pixels, so the scale does not
    flicker from frame to frame. None while there is nothing to measure.
    """
    if not (longest > 0 and math.isfinite(longest)):
        return current
    if current is not None and low <= longest * current <= high:
        return current
    ideal = math.log10(target / longest)
    decade = math.floor(ideal)
    candidates = [m * 10.0 ** (decade + d) for d in (-1, 0, 1) for m in (1, 2, 5)]
    best = min(candidates, key=lambda c: abs(math.log10(c) - ideal))
    exponent = math.floor(math.log10(best) + 1e-9)
    if exponent > 12 or exponent < -12:
        return 10.0 ** max(-12, min(12, exponent))
    return float(f"{best:.1g}")


def scale_text(scale: float | None) -> str:
    if scale is None:
        return "–"
    exponent = round(math.log10(scale))
    if abs(scale - 10.0 ** exponent) > 1e-9 * scale:
        return f"×{scale:g}"
    if -3 <= exponent <= 3:
        return f"×{scale:g}"
    return f"×10^{exponent}"


class GlyphLayer:
    """The glyph items of one map. Feed ``set_glyphs`` per frame and ``set_parts`` in step-by-step mode."""

    def __init__(self, plot: pg.PlotWidget):
        self.plot = plot
        self.vb = plot.getPlotItem().vb
        self.enabled: dict[str, bool] = {k.key: False for k in GLYPH_KINDS}
        self.fixed_scale: float | None = None  # None: auto
        self.scales: dict[str, float | None] = {"grad": None, "disp": None}
        self._heads = np.zeros((0, 2))
        self._values: dict[str, np.ndarray | None] = {}
        self._items: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        for kind in GLYPH_KINDS:
            colour = QColor(kind.colour)
            if kind.ellipse:
                colour.setAlpha(200)
            self._items[kind.key] = self._pair(colour, 1.3 if kind.ellipse else 2.0, z=40)
        # step-by-step parts
        self._chains: list[tuple[np.ndarray, list[tuple[str, str, np.ndarray]], np.ndarray]] = []
        self._part_items: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        self._sum_items = self._pair(SUM_COLOUR, 1.2, z=44, style=Qt.DashLine)
        self._labels: list[pg.TextItem] = []
        self.revealed = 0  # how many parts of each chain are shown (animation in step-by-step mode)
        self._reveal_timer = QTimer(plot)  # dies with the plot, never fires into deleted items
        self._reveal_timer.setInterval(380)
        self._reveal_timer.timeout.connect(self._reveal_next)
        self.drawn: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # kind -> (origins, tips or radii), for tests
        # The arrow scales, in the map's lower right corner (pixel coordinates of the view box).
        self.scale_item = pg.TextItem(anchor=(1, 1), color="#ffffff", fill=pg.mkBrush(20, 20, 30, 170))
        self.scale_item.setParentItem(self.vb)
        self.scale_item.setZValue(60)
        self.scale_item.setVisible(False)
        self.vb.sigRangeChanged.connect(lambda *_: self.render())
        self.vb.sigResized.connect(lambda *_: self.render())

    # ---- items ----
    def _pair(self, colour, width: float, z: float, style=Qt.SolidLine) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        shadow = pg.PlotDataItem(pen=pg.mkPen(SHADOW, width=width + 2.2), connect="finite")
        item = pg.PlotDataItem(pen=pg.mkPen(colour, width=width, style=style), connect="finite")
        for it, dz in ((shadow, 0), (item, 1)):
            it.setZValue(z + dz)
            it.setVisible(False)
            self.plot.addItem(it)
        return shadow, item

    def item(self, key: str) -> pg.PlotDataItem:
        """The visible item of a glyph kind (its getData() is what is drawn)."""
        return self._items[key][1]

    def part_item(self, key: str) -> pg.PlotDataItem | None:
        pair = self._part_items.get(key)
        return None if pair is None else pair[1]

    @property
    def sum_item(self) -> pg.PlotDataItem:
        return self._sum_items[1]

    def pixel(self) -> tuple[float, float]:
        px, py = self.vb.viewPixelSize()
        if not (px > 0 and py > 0 and math.isfinite(px) and math.isfinite(py)):
            (x0, x1), (y0, y1) = self.vb.viewRange()
            px, py = (x1 - x0) / 500 or 1.0, (y1 - y0) / 400 or 1.0
        return float(px), float(py)

    # ---- inputs ----
    def set_enabled(self, key: str, on: bool) -> None:
        self.enabled[key] = bool(on)
        self.render()

    def any_enabled(self) -> bool:
        return any(self.enabled.values())

    def set_fixed_scale(self, scale: float | None) -> None:
        self.fixed_scale = scale
        self.scales = {"grad": None, "disp": None}
        self.render()

    def set_glyphs(self, heads: np.ndarray, values: dict[str, np.ndarray | None], render: bool = True) -> None:
        """``heads`` (M, 2); ``values[kind]`` (M, 2) vectors (radii for the ellipse), NaN rows skipped."""
        self._heads = np.asarray(heads, dtype=np.float64).reshape(-1, 2)
        self._values = dict(values)
        if render:
            self.render()

    def set_parts(self, chains: list[tuple[np.ndarray, list[tuple[str, str, np.ndarray]]]],
                  animate: bool = False, render: bool = True) -> None:
        """Step-by-step mode: per optimiser, the origin (M, 2) of an update and its parts in torch's order.

        Parts are drawn head to tail from the origin, so the chain ends at origin + scale * step.
        With ``animate`` they appear one after another.
        """
        self._chains = [(np.asarray(o, dtype=np.float64).reshape(-1, 2), list(parts),
                         np.sum([p[2] for p in parts], axis=0) if parts else np.zeros((len(o), 2)))
                        for o, parts in chains]
        total = self.part_count()
        if animate and self.fixed_scale is None:
            self.scales["disp"] = None  # one update at a time: fit each one afresh (no flicker to avoid)
        if animate and total > 1:
            self.revealed = 1
            self._reveal_timer.start()
        else:
            self._reveal_timer.stop()
            self.revealed = total
        if render:
            self.render()

    def part_count(self) -> int:
        return max((len(parts) for _, parts, _ in self._chains), default=0)

    def reveal_all(self) -> None:
        self._reveal_timer.stop()
        self.revealed = self.part_count()
        self.render()

    def _reveal_next(self) -> None:
        self.revealed += 1
        if self.revealed >= self.part_count():
            self.revealed = self.part_count()
            self._reveal_timer.stop()
        self.render()

    def clear(self) -> None:
        self._heads = np.zeros((0, 2))
        self._values = {}
        self._chains = []
        self._reveal_timer.stop()
        self.revealed = 0
        self.render()

    def clear_parts(self) -> None:
        if self._chains:
            self._chains = []
            self._reveal_timer.stop()
            self.render()

    # ---- drawing ----
    def _group_vectors(self, group: str) -> list[np.ndarray]:
        out = []
        for kind in GLYPH_KINDS:
            v = self._values.get(kind.key)
            if kind.group == group and self.enabled[kind.key] and v is not None:
                out.append(v)
        if group == "disp":
            for _, parts, total in self._chains:
                out.extend(p[2] for p in parts)
                out.append(total)
        return out

    def _update_scales(self, pixel: tuple[float, float]) -> None:
        for group in ("grad", "disp"):
            if self.fixed_scale is not None:
                self.scales[group] = self.fixed_scale
            elif group == "disp" and self._chains:  # step-by-step: the split update is the subject, draw it large
                self.scales[group] = auto_scale(self.scales[group], longest_px(self._group_vectors(group), pixel),
                                                target=1.8 * TARGET_PX, low=2 * MIN_PX, high=MAX_PX)
            else:
                self.scales[group] = auto_scale(self.scales[group], longest_px(self._group_vectors(group), pixel))

    def render(self) -> None:
        pixel = self.pixel()
        self._update_scales(pixel)
        self.drawn = {}
        for kind in GLYPH_KINDS:
            shadow, item = self._items[kind.key]
            v = self._values.get(kind.key)
            show = self.enabled[kind.key] and v is not None and len(self._heads) > 0
            if not show:
                if item.isVisible():
                    shadow.setVisible(False)
                    item.setVisible(False)
                    item.setData([], [])
                    shadow.setData([], [])
                continue
            s = self.scales[kind.group] or 1.0
            v = np.asarray(v, dtype=np.float64).reshape(-1, 2) * s
            if kind.ellipse:
                x, y = ellipse_polyline(self._heads, np.abs(v))
                self.drawn[kind.key] = (self._heads, np.abs(v))
            else:
                x, y = arrow_polyline(self._heads, v, pixel)
                self.drawn[kind.key] = (self._heads, self._heads + v)
            for it in (shadow, item):
                it.setData(x, y)
                it.setVisible(True)
        self._render_parts(pixel)
        self._render_scale_text()

    def _render_scale_text(self) -> None:
        text = self.scale_summary() if (self.drawn or self._chains) else ""
        if not text:
            self.scale_item.setVisible(False)
            return
        if self.scale_item.toPlainText() != text:
            self.scale_item.setText(text)
        rect = self.vb.boundingRect()
        self.scale_item.setPos(rect.right() - 4, rect.bottom() - 4)
        self.scale_item.setVisible(True)

    def _render_parts(self, pixel: tuple[float, float]) -> None:
        s = self.scales["disp"] or 1.0
        per_key: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        sums: list[tuple[np.ndarray, np.ndarray]] = []
        label_at: list[tuple[str, str, np.ndarray]] = []
        complete = self.revealed >= self.part_count()
        pix = np.array(pixel)
        for origin, parts, total in self._chains:
            here = origin.copy()
            for n, (key, label, vec) in enumerate(parts[: self.revealed]):
                v = np.asarray(vec, dtype=np.float64).reshape(-1, 2) * s
                per_key.setdefault(key, []).append((here.copy(), v))
                # The part's number beside its middle (first trajectory), when the arrow is long enough to carry one.
                d = v[0] / pix
                length = float(np.hypot(*d)) if np.isfinite(d).all() else 0.0
                if length >= 16:
                    normal = np.array([-d[1], d[0]]) / length * 11.0
                    label_at.append((str(n + 1), part_colour(key), here[0] + 0.5 * v[0] + normal * pix))
                here = here + v
            if complete and parts:
                sums.append((origin, total * s))
        for key in list(self._part_items) + [k for k in per_key if k not in self._part_items]:
            if key not in self._part_items:
                self._part_items[key] = self._pair(part_colour(key), 2.6, z=46)
            shadow, item = self._part_items[key]
            arrows = per_key.get(key)
            if not arrows:
                for it in (shadow, item):
                    it.setVisible(False)
                    it.setData([], [])
                continue
            o = np.concatenate([a[0] for a in arrows])
            v = np.concatenate([a[1] for a in arrows])
            x, y = arrow_polyline(o, v, pixel, head_px=HEAD_PX + 1)
            self.drawn[f"part:{key}"] = (o, o + v)
            for it in (shadow, item):
                it.setData(x, y)
                it.setVisible(True)
        shadow, item = self._sum_items
        if sums:
            o = np.concatenate([a[0] for a in sums])
            v = np.concatenate([a[1] for a in sums])
            x, y = arrow_polyline(o, v, pixel)
            self.drawn["sum"] = (o, o + v)
            for it in (shadow, item):
                it.setData(x, y)
                it.setVisible(True)
        else:
            for it in (shadow, item):
                it.setVisible(False)
                it.setData([], [])
        self._render_labels(label_at)

    def _render_labels(self, label_at: list[tuple[str, str, np.ndarray]]) -> None:
        wanted = [(text, colour, pos) for text, colour, pos in label_at if np.isfinite(pos).all()][:24]
        while len(self._labels) < len(wanted):
            label = pg.TextItem(anchor=(0.5, 0.5), fill=pg.mkBrush(20, 20, 30, 150))
            label.setZValue(50)
            self.plot.addItem(label)
            self._labels.append(label)
        for i, label in enumerate(self._labels):
            if i < len(wanted):
                text, colour, pos = wanted[i]
                label.setHtml(f"<span style='color:{colour}; font-weight:600; font-size:8pt'>{text}</span>")
                label.setPos(float(pos[0]), float(pos[1]))
                label.setVisible(True)
            else:
                label.setVisible(False)

    def scale_summary(self) -> str:
        """For the legend: the current display scales of both groups."""
        shown_grad = any(self.enabled[k.key] for k in GLYPH_KINDS if k.group == "grad")
        shown_disp = any(self.enabled[k.key] for k in GLYPH_KINDS if k.group == "disp") or bool(self._chains)
        parts = []
        if shown_grad:
            parts.append(f"gradients {scale_text(self.scales['grad'])}")
        if shown_disp:
            parts.append(f"steps {scale_text(self.scales['disp'])}")
        return ("arrows: " + ", ".join(parts)) if parts else ""
