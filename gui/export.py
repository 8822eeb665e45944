"""Figures and metrics out of the window: any plot as PNG (at a chosen size) or SVG, a run's numbers as
CSV or JSON.

Plots are painted by Qt itself (``QWidget.render``) into a QImage or a QSvgGenerator, so what is
exported is what is on screen: legends, axis labels, titles, markers where they are drawn. (pyqtgraph's
own ImageExporter moves scatter markers when the size changes, and its SVGExporter fails with this
PySide6; both are avoided here.)

Metrics files are written aside and renamed (never half-written), floats with repr (exact).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, QSize
from PySide6.QtGui import QColor, QImage, QPainter, QRegion
from PySide6.QtWidgets import QWidget

from engine.registry import ConfigError
from engine.render import CsvSink, write_json

FIGURE_SUFFIXES = (".png", ".svg")
METRIC_SUFFIXES = (".csv", ".json")
MAX_SIDE = 16_384


def _background(widget: QWidget) -> QColor:
    bg = getattr(widget, "backgroundBrush", None)
    if callable(bg):
        colour = bg().color()
        if colour.alpha() > 0:
            return colour
    return widget.palette().window().color()


class _LaidOutAt:
    """Temporarily lay ``widget`` out at ``size`` (synchronously; restored on exit, nothing repainted on screen)."""

    def __init__(self, widget: QWidget, size: QSize):
        self.widget, self.size, self.old = widget, size, widget.size()

    def __enter__(self) -> None:
        if self.size != self.old:
            self.widget.resize(self.size)

    def __exit__(self, *exc: Any) -> None:
        if self.widget.size() != self.old:
            self.widget.resize(self.old)


def export_plot(plot_widget: QWidget, path: str | os.PathLike, width: int | None = None,
                height: int | None = None, background: str | QColor | None = None) -> Path:
    """Write ``plot_widget`` (a pyqtgraph PlotWidget, or any widget: a whole panel) as PNG or SVG.

    PNG: ``width`` x ``height`` pixels (default: the size on screen; one given, the other keeps the
    aspect). The plot keeps its on-screen proportions of text to plot: it is laid out at the on-screen
    width and the requested aspect, then painted scaled, so a 2x export is a sharper copy of the screen,
    not a re-flowed one with tiny text. SVG: vector, at the on-screen size (``width``/``height`` set
    its nominal size). Returns the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FIGURE_SUFFIXES:
        raise ConfigError("export", f"choose a .png or .svg file name, got {path.name!r}")
    screen = plot_widget.size()
    sw, sh = max(screen.width(), 1), max(screen.height(), 1)
    if width is None and height is None:
        width, height = sw, sh
    elif width is None:
        width = int(round(height * sw / sh))
    elif height is None:
        height = int(round(width * sh / sw))
    for name, v in (("width", width), ("height", height)):
        if isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= MAX_SIDE:
            raise ConfigError(f"export.{name}", f"must be a whole number of pixels from 16 to {MAX_SIDE:,}, got {v!r}")
    scale = width / sw
    logical = QSize(sw, max(1, int(round(height / scale))))
    bg = QColor(background) if background is not None else _background(plot_widget)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.part{suffix}")
    try:
        with _LaidOutAt(plot_widget, logical):
            if suffix == ".png":
                image = QImage(width, height, QImage.Format_ARGB32)
                image.fill(bg)
                p = QPainter(image)
                p.setRenderHint(QPainter.Antialiasing, True)
                p.setRenderHint(QPainter.TextAntialiasing, True)
                p.scale(scale, scale)
                QWidget.render(plot_widget, p, QPoint(0, 0), QRegion(), QWidget.RenderFlag.DrawChildren)
                p.end()
                if not image.save(str(tmp), "PNG"):
                    raise OSError(f"could not write {path}")
            else:
                from PySide6.QtSvg import QSvgGenerator
                gen = QSvgGenerator()
                gen.setFileName(str(tmp))
                gen.setSize(QSize(width, height))
                gen.setViewBox(QRect(0, 0, logical.width(), logical.height()))
                gen.setTitle(plot_widget.windowTitle() or "Optiscope plot")
                gen.setDescription("Exported by Optiscope")
                p = QPainter(gen)
                p.fillRect(QRectF(0, 0, logical.width(), logical.height()), bg)
                QWidget.render(plot_widget, p, QPoint(0, 0), QRegion(), QWidget.RenderFlag.DrawChildren)
                p.end()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# ---- metrics -------------------------------------------------------------------------------------------

def _series(obj: Any, name: str) -> np.ndarray:
    """``obj.name`` as an array, whether it is a growing buffer (``.view``) or an array already."""
    value = getattr(obj, name)
    return np.asarray(value.view if hasattr(value, "view") else value)


def _landscape_chunks(history: Any):
    """The race's series in pieces of dicts {steps, xy, loss, grad_norm, lr}: a RaceHistory reads its run
    back from disk a chunk at a time (``chunks()``), so a long run is never in memory whole; anything else
    (engine.render.LandscapeStream, arrays) is one piece."""
    if callable(getattr(history, "chunks", None)):
        yield from history.chunks()
        return
    yield {"steps": _series(history, "steps"), **{n: _series(history, n) for n in ("loss", "grad_norm", "lr")},
           "xy": _series(history, "xy") if getattr(history, "xy", None) is not None else None}


def export_landscape_metrics(history: Any, labels: Sequence[str], path: str | os.PathLike) -> Path:
    """A 2D race's curves as CSV (one row per step and optimiser) or JSON (one list per series).

    ``history`` is the panel's RaceHistory (read back from its temporary file chunk by chunk), or anything
    with ``steps``, ``loss``, ``grad_norm``, ``lr`` of shape (T,) / (T, K) and ``xy`` of shape (T, K, N, 2),
    as buffers with ``.view`` or arrays: loss and gradient norm are the means over the start points that
    have not diverged, as drawn. x and y are the first trajectory's (the only one for a single start point).
    """
    path = Path(path)
    if hasattr(history, "k") and callable(getattr(history, "chunks", None)):
        k = history.k
    else:
        loss = _series(history, "loss")
        k = loss.shape[1] if loss.ndim == 2 else 1
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} optimisers")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        sink = CsvSink(path, ["step", "optimizer", "x", "y", "loss", "grad_norm", "lr"])
        try:
            for c in _landscape_chunks(history):
                xy = c["xy"]
                has_xy = xy is not None and xy.ndim == 4 and xy.shape[2]
                # tolist() gives the same Python floats as float() of each element, far faster
                xs = xy[:, :, 0, 0].tolist() if has_xy else None
                ys = xy[:, :, 0, 1].tolist() if has_xy else None
                loss, grad, lr = (np.asarray(c[n]).reshape(len(c["steps"]), k).tolist()
                                  for n in ("loss", "grad_norm", "lr"))
                for t, step in enumerate(c["steps"]):
                    for i, label in enumerate(labels):
                        x, y = (xs[t][i], ys[t][i]) if has_xy else (math.nan, math.nan)
                        sink.write((int(step), label, x, y, loss[t][i], grad[t][i], lr[t][i]))
        except BaseException:
            sink.abort()
            raise
        return sink.close()
    if suffix == ".json":
        parts = list(_landscape_chunks(history))
        steps = np.concatenate([np.asarray(c["steps"]) for c in parts])
        loss, grad, lr = (np.concatenate([np.asarray(c[n]).reshape(len(c["steps"]), k) for c in parts])
                          for n in ("loss", "grad_norm", "lr"))
        xy = np.concatenate([c["xy"] for c in parts]) if parts and parts[0]["xy"] is not None else None
        data = {"steps": steps.tolist(), "optimizers": [
            {"label": label, "loss": loss[:, i], "grad_norm": grad[:, i], "lr": lr[:, i],
             **({"x": xy[:, i, 0, 0], "y": xy[:, i, 0, 1]} if xy is not None and xy.ndim == 4 and xy.shape[2] else {})}
            for i, label in enumerate(labels)]}
        return write_json(path, data)
    raise ConfigError("export", f"choose a .csv or .json file name, got {path.name!r}")


def export_training_metrics(trace: Any, path: str | os.PathLike, label: str = "") -> Path:
    """An MNIST run's curves: per step (loss, lr, gradient norm) and per evaluation (train/validation
    loss and accuracy). CSV gets both tables in one file with a ``kind`` column ("step" or "eval");
    JSON gets {"steps": {...}, "evals": {...}}.

    ``trace`` is the MNIST panel's RunTrace (``step``, ``loss``, ``lr``, ``grad`` per step; ``eval_epoch``,
    ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc`` per evaluation) or engine.render.RunTrace.
    """
    path = Path(path)
    step = _series(trace, "step")
    loss = _series(trace, "loss")
    lr = _series(trace, "lr")
    grad = _series(trace, "grad" if hasattr(trace, "grad") else "grad_norm")
    evals = getattr(trace, "evals", None)
    if evals is not None and not hasattr(trace, "val_loss"):  # engine.render.RunTrace: EvalPoints
        ev = {"epoch": np.array([e.epoch for e in evals]), "train_loss": np.array([e.train_loss for e in evals]),
              "val_loss": np.array([e.val_loss for e in evals]), "train_acc": np.array([e.train_acc for e in evals]),
              "val_acc": np.array([e.val_acc for e in evals])}
    else:
        ev = {"epoch": _series(trace, "eval_epoch"), **{n: _series(trace, n) for n in
                                                         ("train_loss", "val_loss", "train_acc", "val_acc")}}
    suffix = path.suffix.lower()
    if suffix == ".csv":
        sink = CsvSink(path, ["kind", "run", "step", "epoch", "loss", "lr", "grad_norm", "train_loss", "val_loss",
                              "train_acc", "val_acc"])
        try:
            for j in range(len(step)):
                sink.write(("step", label, int(step[j]), "", float(loss[j]), float(lr[j]), float(grad[j]),
                            "", "", "", ""))
            for j in range(len(ev["epoch"])):
                sink.write(("eval", label, "", float(ev["epoch"][j]), "", "", "", float(ev["train_loss"][j]),
                            float(ev["val_loss"][j]), float(ev["train_acc"][j]), float(ev["val_acc"][j])))
        except BaseException:
            sink.abort()
            raise
        return sink.close()
    if suffix == ".json":
        return write_json(path, {"run": label, "steps": {"step": step, "loss": loss, "lr": lr, "grad_norm": grad},
                                 "evals": ev})
    raise ConfigError("export", f"choose a .csv or .json file name, got {path.name!r}")
