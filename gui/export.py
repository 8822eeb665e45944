"""Figures and metrics out of the window: any plot as PNG (at a chosen size) or SVG, a run's numbers as
CSV or JSON.

Plots are painted by Qt itself (``QWidget.render``) into a QImage or a QSvgGenerator, so what is
exported is what is on screen: legends, axis labels, titles, markers where they are drawn. (pyqtgraph's
own ImageExporter moves scatter markers when the size changes, and its SVGExporter fails with this
PySide6; both are avoided here.)

Metrics files are written aside and renamed (never half-written), floats with repr (exact).

Every export kind (figures, metrics, clips, sessions) checks the file the user chose the same way first
(``destination``): a name typed without an extension gets the chosen format's, a name with another
format's extension is refused, and the folder must already exist (a file dialog only offers existing
folders; a typed path to a missing one is refused rather than created). A failure while writing is
reported in words naming that file (``ExportError``, ``describe_os_error``), never the temporary file
beside it.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PySide6.QtCore import QPoint, QRect, QRectF, QSize
from PySide6.QtGui import QColor, QImage, QPainter, QRegion
from PySide6.QtWidgets import QWidget

from engine.registry import ConfigError
from engine.render import _ONE_LINE_MAX_ITEMS, CsvSink, TextSink, csv_cell, json_numbers, write_json

FIGURE_SUFFIXES = (".png", ".svg")
METRIC_SUFFIXES = (".csv", ".json")
VIDEO_SUFFIXES = (".mp4", ".gif")
SESSION_SUFFIXES = (".json",)
MAX_SIDE = 16_384


# ---- where an export goes -------------------------------------------------------------------------------

class ExportError(ConfigError):
    """An export refused or failed, in words for the user: names the file they chose (never a temporary
    file) and the problem. ``str()`` is the message alone."""

    def __init__(self, message: str):
        super().__init__("export", message)

    def __str__(self) -> str:
        return self.problem


def filter_suffix(selected_filter: str | None) -> str | None:
    """The extension a file dialog's filter names: "CSV (*.csv)" -> ".csv"; None when there is none."""
    m = re.search(r"\*(\.[A-Za-z0-9]+)", selected_filter or "")
    return m.group(1).lower() if m else None


def _nearest_existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def destination(path: str | os.PathLike, suffixes: Sequence[str], selected_filter: str | None = None,
                what: str = "file") -> Path:
    """The file an export of ``what`` (one of ``suffixes``) writes, checked before anything is written.

    No extension: the selected filter's is added (``"run"`` with "CSV (*.csv)" -> ``run.csv``), or the
    first of ``suffixes`` without a filter. Another extension: refused, naming the ones that work. The
    folder must exist and be a folder; the file itself must not be a folder. Raises ExportError.
    """
    text = os.fspath(path)
    if not text.strip():
        raise ExportError(f"choose a file name for the {what}")
    p = Path(text).expanduser()
    if p.name in ("", ".", "..") or text.endswith(os.sep):
        raise ExportError(f"{p} is a folder; choose a file name for the {what}")
    suffix = p.suffix.lower()
    if not suffix:  # "run"
        wanted = filter_suffix(selected_filter)
        p = p.with_name(p.name + (wanted if wanted in suffixes else suffixes[0]))
    elif suffix not in suffixes:
        names = " or ".join(suffixes)
        raise ExportError(f"cannot write {p}: a {what} must end in {names}, not {p.suffix}")
    folder = p.parent
    if not folder.is_dir():
        found = _nearest_existing(folder)
        if found.exists() and not found.is_dir():
            raise ExportError(f"cannot write {p}: {found} is a file, not a folder")
        raise ExportError(f"cannot write {p}: folder {folder} does not exist")
    if p.is_dir():
        raise ExportError(f"cannot write {p}: it is a folder; choose a file name")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {p}: no permission to write to {folder}")
    return p


def describe_os_error(exc: OSError, path: str | os.PathLike) -> str:
    """An OSError met while writing ``path`` (or a temporary file beside it) in words naming ``path``."""
    p = Path(path)
    folder = p.parent
    code = getattr(exc, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        reason = f"no permission to write to {folder}"
    elif code == errno.EROFS:
        reason = f"{folder} is read-only"
    elif code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        reason = "the disk is full"
    elif code == errno.ENAMETOOLONG:
        reason = "the name is too long"
    elif code == errno.EISDIR:
        reason = "it is a folder; choose a file name"
    elif code in (errno.ENOTDIR, errno.EEXIST) or (code == errno.ENOENT and not folder.is_dir()):
        found = _nearest_existing(folder)
        reason = (f"{found} is a file, not a folder" if found.exists() and not found.is_dir()
                  else f"folder {folder} does not exist")
    elif code == errno.ENOENT:  # the folder is there but takes no new files (/proc, /sys)
        reason = f"{folder} does not accept new files (a system or read-only folder)"
    else:
        reason = (exc.strerror or type(exc).__name__).rstrip(".")
        reason = reason[:1].lower() + reason[1:]
    return f"cannot write {p}: {reason}"


def _written(path: Path, write: Callable[[Path], Path]) -> Path:
    """``write(path)``, with an OSError raised as an ExportError naming ``path``."""
    try:
        return write(path)
    except OSError as exc:
        raise ExportError(describe_os_error(exc, path)) from exc


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
                height: int | None = None, background: str | QColor | None = None,
                selected_filter: str | None = None) -> Path:
    """Write ``plot_widget`` (a pyqtgraph PlotWidget, or any widget: a whole panel) as PNG or SVG.

    PNG: ``width`` x ``height`` pixels (default: the size on screen; one given, the other keeps the
    aspect). The plot keeps its on-screen proportions of text to plot: it is laid out at the on-screen
    width and the requested aspect, then painted scaled, so a 2x export is a sharper copy of the screen,
    not a re-flowed one with tiny text. SVG: vector, at the on-screen size (``width``/``height`` set
    its nominal size). ``path`` is checked by ``destination`` (``selected_filter``: the file dialog's, whose
    extension a name without one gets). Returns the path written; ExportError when it cannot be.
    """
    path = destination(path, FIGURE_SUFFIXES, selected_filter, "figure")
    suffix = path.suffix.lower()
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
    tmp = path.with_name(f".{path.stem}.part{suffix}")
    try:
        # Created here first: Qt's writers only say that they failed, the OS says why.
        with open(tmp, "wb"):
            pass
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
                    raise ExportError(f"cannot write {path}: the image could not be saved")
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
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise ExportError(describe_os_error(exc, path)) from exc
        raise
    return path


# ---- metrics -------------------------------------------------------------------------------------------
#
# Exports of long runs (a RaceHistory holds up to millions of steps on disk) are written a chunk at a time
# and formatted in bulk: ``tolist()`` then ``repr`` gives the same exact text per float as fmt() and
# json.dumps did one call at a time, many times faster. They run on a worker thread (gui.export_worker);
# ``progress(fraction)`` is called between chunks and may raise to cancel, which removes the .part file.

Progress = Callable[[float], None]
# Values per series formatted at a time (steps x optimisers). Formatting a piece is one long C call
# (str.join over map) that holds the GIL, so the piece bounds how long the GUI thread can wait on the
# export (tens of ms) as well as the memory its Python floats and strings take.
_PIECE_VALUES = 1 << 14


def _series(obj: Any, name: str) -> np.ndarray:
    """``obj.name`` as an array, whether it is a growing buffer (``.view``) or an array already."""
    value = getattr(obj, name)
    if isinstance(value, np.ndarray):  # ndarray.view is a method, not a buffer's view
        return value
    return np.asarray(value.view if hasattr(value, "view") else value)


def _landscape_chunks(history: Any):
    """The race's series in pieces of dicts {steps, xy, loss, grad_norm, lr}: a RaceHistory reads its run
    back from disk a chunk at a time (``chunks()``), so a long run is never in memory whole; anything else
    (engine.render.LandscapeStream, arrays) is one piece."""
    if callable(getattr(history, "chunks", None)):
        for c in history.chunks():
            # Formatted in pieces of about _PIECE_VALUES values: the Python floats and strings of a
            # piece cost ~100 bytes a value, and each piece is a point to report progress and cancel.
            n = len(c["steps"])
            step = max(1, _PIECE_VALUES // max(1, np.size(c["loss"]) // max(n, 1)))
            if n <= step:
                yield c
                continue
            for a in range(0, n, step):
                yield {name: (v[a:a + step] if v is not None else None) for name, v in c.items()}
        return
    yield {"steps": _series(history, "steps"), **{n: _series(history, n) for n in ("loss", "grad_norm", "lr")},
           "xy": _series(history, "xy") if getattr(history, "xy", None) is not None else None}


def _history_size(history: Any) -> tuple[int, int | None]:
    """(K optimisers, T steps; None when T is only known by reading the series)."""
    if hasattr(history, "k") and callable(getattr(history, "chunks", None)):
        return history.k, len(history.steps)
    loss = _series(history, "loss")
    return (loss.shape[1] if loss.ndim == 2 else 1), len(loss)


def _trajectories(history: Any) -> int:
    """Start points per optimiser: a RaceHistory's ``n``, else the xy series' third axis."""
    n = getattr(history, "n", None)
    if n is None:
        xy = history.get("xy") if isinstance(history, dict) else getattr(history, "xy", None)
        n = np.shape(xy)[2] if _has_xy(xy) else 1
    return int(n)


def _has_xy(xy: Any) -> bool:
    return xy is not None and np.ndim(xy) == 4 and bool(np.shape(xy)[2])


def export_landscape_metrics(history: Any, labels: Sequence[str], path: str | os.PathLike,
                             progress: Progress | None = None) -> Path:
    """A 2D race's curves as CSV (one row per step and optimiser) or JSON (one list per series).

    ``history`` is the panel's RaceHistory (read back from its temporary file chunk by chunk), or anything
    with ``steps``, ``loss``, ``grad_norm``, ``lr`` of shape (T,) / (T, K) and ``xy`` of shape (T, K, N, 2),
    as buffers with ``.view`` or arrays: loss and gradient norm are the means over the start points that
    have not diverged, as drawn. x and y are the first trajectory's (the only one for a single start point).
    ``progress(fraction)`` is called as chunks are written; an exception it raises stops the export and
    leaves no file. ``path`` is checked by ``destination`` (no extension: .csv); ExportError when it
    cannot be written.
    """
    path = destination(path, METRIC_SUFFIXES, what="metrics file")
    k, total = _history_size(history)
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for {k} optimisers")
    report = progress or (lambda fraction: None)
    if path.suffix.lower() == ".csv":
        return _written(path, lambda p: _landscape_csv(history, labels, p, k, total, report))
    if total > _ONE_LINE_MAX_ITEMS and k:
        return _written(path, lambda p: _landscape_json_streamed(history, labels, p, k, total, report))
    return _written(path, lambda p: _landscape_json_whole(history, labels, p, k, report))


def _landscape_csv(history: Any, labels: Sequence[str], path: Path, k: int, total: int, report: Progress) -> Path:
    # A cloud's rows carry its first trajectory's position beside the mean loss and gradient norm over
    # the trajectories that have not diverged (as the curves draw them): the header says so.
    cloud = _trajectories(history) > 1
    sink = CsvSink(path, ["step", "optimizer", "x_first", "y_first", "mean_loss", "mean_grad_norm", "lr"] if cloud
                   else ["step", "optimizer", "x", "y", "loss", "grad_norm", "lr"])
    cells = [csv_cell(label) for label in labels]
    done = 0
    try:
        for c in _landscape_chunks(history):
            steps = np.asarray(c["steps"])
            n = len(steps)
            if n == 0:
                continue
            # Row t * k + i is step t, optimiser i: the order the row-major (T, K) arrays flatten in.
            heads = [f"{s},{cell}" for s in map(str, steps.astype(np.int64).tolist()) for cell in cells]
            loss, grad, lr = (np.asarray(c[name]).reshape(n, k).ravel().tolist()
                              for name in ("loss", "grad_norm", "lr"))
            if _has_xy(c["xy"]):
                xy = np.asarray(c["xy"])
                xs, ys = xy[:, :, 0, 0].ravel().tolist(), xy[:, :, 0, 1].ravel().tolist()
                line = "%s,%r,%r,%r,%r,%r\n"  # %r of a Python float is its repr: exact, and nan/inf as fmt()
                text = "".join(map(line.__mod__, zip(heads, xs, ys, loss, grad, lr)))
            else:
                line = "%s,nan,nan,%r,%r,%r\n"
                text = "".join(map(line.__mod__, zip(heads, loss, grad, lr)))
            sink.write_text(text, n * k)
            done += n
            report(done / max(total, 1))
    except BaseException:
        sink.abort()
        raise
    return sink.close()


def _landscape_json_whole(history: Any, labels: Sequence[str], path: Path, k: int, report: Progress) -> Path:
    """Short runs (and no optimisers): the run in memory, laid out by dumps itself (lists on one line)."""
    parts = list(_landscape_chunks(history))
    report(0.5)
    steps = np.concatenate([np.asarray(c["steps"]) for c in parts])
    loss, grad, lr = (np.concatenate([np.asarray(c[n]).reshape(len(c["steps"]), k) for c in parts])
                      for n in ("loss", "grad_norm", "lr"))
    xy = np.concatenate([c["xy"] for c in parts]) if parts and parts[0]["xy"] is not None else None
    data = {"steps": steps.tolist(), "optimizers": [
        {"label": label, "loss": loss[:, i], "grad_norm": grad[:, i], "lr": lr[:, i],
         **({"x": xy[:, i, 0, 0], "y": xy[:, i, 0, 1]} if _has_xy(xy) else {})}
        for i, label in enumerate(labels)]}
    return write_json(path, data)


# the layout engine.session.dumps gives {"steps": [...], "optimizers": [{...}, ...]} when every list is
# too long for one line (more than _ONE_LINE_MAX_ITEMS numbers): one number a line, two spaces a level
_STEP_SEP = ",\n    "
_SERIES_SEP = ",\n        "


def _landscape_json_streamed(history: Any, labels: Sequence[str], path: Path, k: int, total: int,
                             report: Progress) -> Path:
    """The JSON of a long run without the run in memory: the file is laid out series by series (steps,
    then each optimiser's) while the history is read back in step order, so one pass over the chunks writes
    the steps straight into the file and each optimiser's series into its own spooled temporary file
    (in memory while small, an unnamed file beside the export after), copied in after the pass.
    Byte for byte what write_json gives for the same data (tests/gui/test_export_metrics.py)."""
    sink = TextSink(path)
    spools: list[list[Any]] = []
    try:
        sink.write('{\n  "steps": [\n    ')
        names: list[str] | None = None
        done = 0
        for c in _landscape_chunks(history):
            steps = np.asarray(c["steps"])
            n = len(steps)
            if n == 0:
                continue
            if names is None:
                names = ["loss", "grad_norm", "lr"] + (["x", "y"] if _has_xy(c["xy"]) else [])
                spools = [[tempfile.SpooledTemporaryFile(max_size=1 << 20, dir=path.parent) for _ in names]
                          for _ in range(k)]
            first = done == 0
            sink.write(("" if first else _STEP_SEP) + json_numbers(steps, _STEP_SEP))
            series = [np.asarray(c[name]).reshape(n, k) for name in ("loss", "grad_norm", "lr")]
            if len(names) == 5:
                xy = np.asarray(c["xy"])
                series += [xy[:, :, 0, 0], xy[:, :, 0, 1]]
            for i in range(k):
                for j, values in enumerate(series):
                    spools[i][j].write((("" if first else _SERIES_SEP)  # numbers and null: ASCII
                                        + json_numbers(values[:, i], _SERIES_SEP)).encode("ascii"))
            done += n
            report(0.9 * done / max(total, 1))
        sink.write("\n  ],\n  \"optimizers\": [\n")
        for i, label in enumerate(labels):
            sink.write("    {\n      \"label\": " + json.dumps(str(label), ensure_ascii=False))
            for name, spool in zip(names or [], spools[i] if spools else []):
                sink.write(f',\n      "{name}": [\n        ')
                spool.seek(0)
                sink.fh.flush()  # then bytes straight to the file under the text layer
                shutil.copyfileobj(spool, sink.fh.buffer, 1 << 20)
                spool.close()
                sink.write("\n      ]")
            sink.write("\n    }" + (",\n" if i < k - 1 else "\n"))
            report(0.9 + 0.1 * (i + 1) / k)
        sink.write("  ]\n}\n")
    except BaseException:
        sink.abort()
        raise
    finally:
        for row in spools:
            for spool in row:
                spool.close()
    return sink.close()


def export_training_metrics(trace: Any, path: str | os.PathLike, label: str = "",
                            progress: Progress | None = None) -> Path:
    """An MNIST run's curves: per step (loss, lr, gradient norm) and per evaluation (train/validation
    loss and accuracy). CSV gets both tables in one file with a ``kind`` column ("step" or "eval");
    JSON gets {"steps": {...}, "evals": {...}}.

    ``trace`` is the MNIST panel's RunTrace (``step``, ``loss``, ``lr``, ``grad`` per step; ``eval_epoch``,
    ``train_loss``, ``val_loss``, ``train_acc``, ``val_acc`` per evaluation) or engine.render.RunTrace.
    ``progress(fraction)`` and ``path`` as for export_landscape_metrics.
    """
    path = destination(path, METRIC_SUFFIXES, what="metrics file")
    return _written(path, lambda p: _training_metrics(trace, p, label, progress))


def _training_metrics(trace: Any, path: Path, label: str, progress: Progress | None) -> Path:
    step = _series(trace, "step")
    loss = _series(trace, "loss")
    lr = _series(trace, "lr")
    grad = _series(trace, "grad" if hasattr(trace, "grad") else "grad_norm")
    evals = getattr(trace, "evals", None)
    if evals is not None and not hasattr(trace, "val_loss"):  # engine.render.RunTrace: EvalPoints
        ev = {"step": np.array([e.step for e in evals]),
              "epoch": np.array([e.epoch for e in evals]), "train_loss": np.array([e.train_loss for e in evals]),
              "val_loss": np.array([e.val_loss for e in evals]), "train_acc": np.array([e.train_acc for e in evals]),
              "val_acc": np.array([e.val_acc for e in evals])}
    else:
        ev = {"step": _series(trace, "eval_step"), "epoch": _series(trace, "eval_epoch"),
              **{n: _series(trace, n) for n in ("train_loss", "val_loss", "train_acc", "val_acc")}}
    report = progress or (lambda fraction: None)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        sink = CsvSink(path, ["kind", "run", "step", "epoch", "loss", "lr", "grad_norm", "train_loss", "val_loss",
                              "train_acc", "val_acc"])
        cell = csv_cell(label).replace("%", "%%")  # it goes into the %-templates below
        try:
            rows = _CHUNK_ROWS
            for a in range(0, len(step), rows):
                b = min(a + rows, len(step))
                steps = map(str, np.asarray(step[a:b]).astype(np.int64).tolist())
                cols = (np.asarray(x[a:b], dtype=np.float64).tolist() for x in (loss, lr, grad))
                line = f"step,{cell},%s,,%r,%r,%r,,,,\n"
                sink.write_text("".join(map(line.__mod__, zip(steps, *cols))), b - a)
                report(0.99 * b / max(len(step), 1))
            eval_steps = map(str, np.asarray(ev["step"]).astype(np.int64).tolist())
            cols = [np.asarray(ev[n], dtype=np.float64).tolist()
                    for n in ("epoch", "train_loss", "val_loss", "train_acc", "val_acc")]
            line = f"eval,{cell},%s,%r,,,,%r,%r,%r,%r\n"
            sink.write_text("".join(map(line.__mod__, zip(eval_steps, *cols))), len(cols[0]))
        except BaseException:
            sink.abort()
            raise
        return sink.close()
    return write_json(path, {"run": label, "steps": {"step": step, "loss": loss, "lr": lr, "grad_norm": grad},
                             "evals": ev})


_CHUNK_ROWS = 65536
