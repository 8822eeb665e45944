"""Headless rendering, the Qt-free half: runs a session's engine generators a fixed number of steps at
a time, keeps what the plots draw, writes deterministic CSVs, and encodes frames to MP4 or GIF.

Content never depends on the machine's speed: frame i of a clip shows the run after exactly
``min(i * steps_per_frame, total)`` steps. The drawing itself (pyqtgraph, offscreen Qt) lives in
``gui.recording``; this module hands it numpy arrays and takes numpy images back.

CSVs are identical from one render to the next: the engine is deterministic for a given session, no
wall-clock values are written, and floats are written with ``repr`` (shortest exact form).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

# torch-backed modules are imported where they are used: `python main.py render --video` checks its
# arguments and hands over to the Qt process without paying for torch twice.
if TYPE_CHECKING:
    from .landscape import LandscapeConfig, LandscapeFrame
    from .session import Session
    from .training import EvalPoint, RunSummary, TrainConfig

MAX_DRAWN_TRAJECTORIES = 64  # beyond this a cloud keeps (and draws) heads only, as the GUI does
SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "480p": (854, 480)}
VIDEO_SUFFIXES = (".mp4", ".gif")


# ---- numbers as text -------------------------------------------------------------------------------

def fmt(v: Any) -> Any:
    """Exact, stable text for CSV: repr for floats (round-trips), words for non-finite values."""
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isfinite(v):
            return repr(v)
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, np.integer):
        return int(v)
    return v


def csv_cell(value: Any) -> str:
    """``value`` as one CSV field, quoted as csv.writer quotes it in a row (labels with commas, quotes)."""
    buf = io.StringIO()
    # A second, empty field: a lone empty field would be written as "" (csv's mark of a non-empty row).
    csv.writer(buf, lineterminator="\n").writerow([fmt(value), ""])
    return buf.getvalue()[:-2]


class CsvSink:
    """Rows streamed to ``path + '.part'``, renamed onto ``path`` by ``close()``: never a half file."""

    def __init__(self, path: str | os.PathLike, header: Sequence[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self._fh = open(self.tmp, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh, lineterminator="\n")
        self._writer.writerow(header)
        self.rows = 0

    def write(self, row: Iterable[Any]) -> None:
        self._writer.writerow([fmt(v) for v in row])
        self.rows += 1

    def write_text(self, text: str, rows: int) -> None:
        """``rows`` rows already formatted (each ending in a newline): long exports format a chunk at a
        time, since a csv.writer call per row costs more than the formatting itself."""
        self._fh.write(text)
        self.rows += rows

    def close(self) -> Path:
        if self._fh.closed:
            return self.path
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if not self._fh.closed:
            self._fh.close()
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


class TextSink(CsvSink):
    """Text streamed to ``path + '.part'`` and renamed by ``close()`` (a JSON file written in pieces)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".part")
        self._fh = open(self.tmp, "w", newline="", encoding="utf-8")
        self.rows = 0

    def write(self, text: str) -> None:
        self._fh.write(text)

    @property
    def fh(self):
        return self._fh


def float_texts(values: Any) -> list[str]:
    """Each value as fmt() writes it in a CSV, for a whole array at once: repr of the Python float (exact;
    repr already spells non-finite values nan, inf, -inf as fmt does)."""
    return list(map(repr, np.asarray(values, dtype=np.float64).ravel().tolist()))


def json_numbers(values: Any, sep: str) -> str:
    """A numeric array's values (flattened) as JSON, joined by ``sep``: the same text per value as
    ``dumps(_jsonable(...))`` gives (ints as ints, floats with repr, non-finite as null, bools as
    true/false), at C speed instead of one json.dumps call per value."""
    a = np.asarray(values)
    flat = a.ravel()
    kind = a.dtype.kind
    if kind == "f":
        # json's C encoder (no indent) writes each float with float.__repr__ like dumps, a bit faster
        # than joining reprs; it spells non-finite values NaN, Infinity, -Infinity, which no number's
        # text contains, so they can be swapped for null afterwards.
        text = json.dumps(flat.tolist(), separators=(sep, ":"))[1:-1]
        if not np.isfinite(flat).all():
            text = text.replace("-Infinity", "null").replace("Infinity", "null").replace("NaN", "null")
        return text
    if kind in "iu":
        return sep.join(map(int.__repr__, flat.tolist()))
    if kind == "b":
        return sep.join("true" if v else "false" for v in flat.tolist())
    from .session import dumps
    return sep.join(dumps(_jsonable(v)) for v in flat.tolist())


# More items than this can never fit dumps()'s 100-character single line (each takes >= 3 characters).
_ONE_LINE_MAX_ITEMS = 33


def _fast_dumps(v: Any, indent: int = 0) -> str:
    """engine.session.dumps(_jsonable(v), indent), byte for byte, with long 1-D numeric arrays written in
    bulk (json_numbers): a 100,000-value series took seconds one json.dumps call at a time."""
    from .session import dumps
    if isinstance(v, dict):
        if not v:
            return "{}"
        pad, inner = "  " * indent, "  " * (indent + 1)
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_fast_dumps(x, indent + 1)}"
                 for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if (isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "fiub"
            and len(v) > _ONE_LINE_MAX_ITEMS):
        pad, inner = "  " * indent, "  " * (indent + 1)
        return "[\n" + inner + json_numbers(v, ",\n" + inner) + "\n" + pad + "]"
    if isinstance(v, (list, tuple)) and v and all(
            isinstance(x, dict) or (isinstance(x, np.ndarray) and x.ndim == 1 and len(x) > _ONE_LINE_MAX_ITEMS)
            for x in v):  # what dumps can only write one item a line
        pad, inner = "  " * indent, "  " * (indent + 1)
        return "[\n" + ",\n".join(inner + _fast_dumps(x, indent + 1) for x in v) + "\n" + pad + "]"
    return dumps(_jsonable(v), indent)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    from .session import atomic_write_text
    return atomic_write_text(Path(path), _fast_dumps(data) + "\n")


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return v if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


# ---- progress --------------------------------------------------------------------------------------

class Progress:
    """A text progress bar on stderr: redrawn in place on a terminal, every 10% otherwise."""

    def __init__(self, total: int, what: str = "", stream=None, enabled: bool = True):
        self.total = max(int(total), 1)
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.started = time.perf_counter()
        self._last_decile = -1
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def __call__(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        done = min(int(done), self.total)
        decile = 10 * done // self.total
        if not self.tty and decile == self._last_decile and done < self.total:
            return
        self._last_decile = decile
        width = 30
        filled = int(width * done / self.total)
        elapsed = time.perf_counter() - self.started
        eta = elapsed / done * (self.total - done) if done else 0.0
        line = (f"{self.what} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}"
                f" {elapsed:5.1f}s" + (f" eta {eta:4.1f}s" if done < self.total else "") + (f" {extra}" if extra else ""))
        if self.tty:
            self.stream.write("\r" + line + "   ")
            if done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


# ---- the frame plan ---------------------------------------------------------------------------------

def frame_steps(total_steps: int, steps_per_frame: int, n_frames: int | None = None) -> np.ndarray:
    """The step each frame shows: 0, spf, 2 spf, ... capped at ``total_steps``.

    Without ``n_frames`` the clip ends on the frame that first shows the last step; with it the clip
    has exactly that many frames (cut short, or holding the last step).
    """
    if steps_per_frame < 1:
        raise ValueError(f"steps_per_frame must be at least 1, got {steps_per_frame}")
    if n_frames is None:
        n_frames = math.ceil(total_steps / steps_per_frame) + 1
    return np.minimum(np.arange(n_frames, dtype=np.int64) * steps_per_frame, total_steps)


def parse_size(text: str | tuple[int, int]) -> tuple[int, int]:
    """'720p', '1080p', '1280x720' or (w, h) -> even (w, h), as H.264 with 4:2:0 chroma needs."""
    if isinstance(text, tuple):
        w, h = text
    elif text in SIZES:
        w, h = SIZES[text]
    else:
        try:
            w, h = (int(v) for v in str(text).lower().split("x"))
        except ValueError:
            from .registry import ConfigError
            raise ConfigError("size", f"expected 720p, 1080p or WIDTHxHEIGHT, got {text!r}") from None
    if not (16 <= w <= 7680 and 16 <= h <= 4320):
        from .registry import ConfigError
        raise ConfigError("size", f"must be between 16x16 and 7680x4320, got {w}x{h}")
    return w - w % 2, h - h % 2


# ---- 2D race ------------------------------------------------------------------------------------------

LANDSCAPE_HEADER = ["step", "optimizer", "trajectory", "x", "y", "loss", "grad_norm", "lr", "diverged_at"]


class Growing:
    """Append-only array that doubles its capacity (amortised O(1)); ``view`` is what was appended."""

    def __init__(self, tail: tuple[int, ...], dtype=np.float64, capacity: int = 256):
        self._a = np.empty((capacity, *tail), dtype=dtype)
        self.n = 0

    def append(self, value) -> None:
        if self.n == len(self._a):
            grown = np.empty((2 * len(self._a), *self._a.shape[1:]), dtype=self._a.dtype)
            grown[: self.n] = self._a[: self.n]
            self._a = grown
        self._a[self.n] = value
        self.n += 1

    @property
    def view(self) -> np.ndarray:
        return self._a[: self.n]


class LandscapeStream:
    """Steps a 2D race on demand and keeps what the GUI draws.

    ``advance_to(step)`` pulls frames from ``run_landscape`` up to that step; every frame goes to the
    optional CSV sink (one row per optimiser and trajectory). ``steps``, ``xy`` (per step, when the
    cloud has at most MAX_DRAWN_TRAJECTORIES points), ``loss``, ``grad_norm`` (means over the cloud,
    NaN where all diverged) and ``lr`` grow as it goes; ``last`` is the newest frame.
    """

    def __init__(self, cfg: LandscapeConfig, csv_path: str | os.PathLike | None = None):
        from .landscape import resolve_function, run_landscape
        cfg.validate()
        self.cfg = cfg
        self.function = resolve_function(cfg)
        self.labels = [o.label or _optimizer_label(o.name) for o in cfg.optimizers]
        self.k = len(cfg.optimizers)
        self._gen: Iterator[LandscapeFrame] = run_landscape(cfg, with_state=False)
        self.last: LandscapeFrame | None = None
        self.n: int | None = None
        self.steps = Growing((), np.int64)
        self.loss = Growing((self.k,))
        self.grad_norm = Growing((self.k,))
        self.lr = Growing((self.k,))
        self.xy: Growing | None = None
        self.sink = CsvSink(csv_path, LANDSCAPE_HEADER) if csv_path is not None else None
        self.done = False

    @property
    def total_steps(self) -> int:
        return self.cfg.steps

    @property
    def step(self) -> int:
        return -1 if self.last is None else self.last.step

    def advance_to(self, step: int) -> LandscapeFrame | None:
        while not self.done and self.step < step:
            try:
                frame = next(self._gen)
            except StopIteration:
                self.done = True
                break
            self._add(frame)
            if frame.step >= self.cfg.steps:
                self.done = True
        return self.last

    def finish(self) -> Path | None:
        """Run to the end (so the CSV holds the whole run) and close the CSV."""
        self.advance_to(self.cfg.steps)
        return self.sink.close() if self.sink is not None else None

    def abort(self) -> None:
        if self.sink is not None:
            self.sink.abort()

    def _add(self, f: LandscapeFrame) -> None:
        if self.n is None:
            self.n = f.xy.shape[1]
            if self.n <= MAX_DRAWN_TRAJECTORIES:
                self.xy = Growing((self.k, self.n, 2))
        self.last = f
        self.steps.append(f.step)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all diverged: NaN is the honest mean
            gn = f.grad_norm
            self.loss.append(np.nanmean(f.loss, axis=1))
            self.grad_norm.append(np.nanmean(gn, axis=1))
        self.lr.append(f.lr)
        if self.xy is not None:
            self.xy.append(f.xy)
        if self.sink is not None:
            gn = f.grad_norm
            for i, label in enumerate(self.labels):
                lr = float(f.lr[i])
                for j in range(self.n):
                    self.sink.write((f.step, label, j, float(f.xy[i, j, 0]), float(f.xy[i, j, 1]),
                                     float(f.loss[i, j]), float(gn[i, j]), lr, int(f.diverged_at[i, j])))


def landscape_ranges(cfg: LandscapeConfig, upto_step: int | None = None, fmin: float = 0.0
                     ) -> dict[str, tuple[float, float] | None]:
    """Extents of what the curves will draw up to ``upto_step``: {"loss", "grad_norm", "lr"} -> (lo, hi)
    over positive finite values (log axes), or None where there are none.

    A first, cheap pass of the (deterministic) engine, so a clip can fix its axes from frame 0: steady
    axes are easier to watch, and an axis that does not move is painted once and reused.
    """
    stream = LandscapeStream(cfg)
    lo = {k: math.inf for k in ("loss", "grad_norm", "lr")}
    hi = {k: -math.inf for k in lo}
    target = cfg.steps if upto_step is None else min(upto_step, cfg.steps)
    while stream.step < target and not stream.done:
        stream.advance_to(min(stream.step + 256, target))
        for key, g in (("loss", stream.loss), ("grad_norm", stream.grad_norm), ("lr", stream.lr)):
            v = g.view - fmin if key == "loss" else g.view
            v = v[np.isfinite(v) & (v > 0)]
            if v.size:
                lo[key], hi[key] = min(lo[key], float(v.min())), max(hi[key], float(v.max()))
        # Only the extents are needed: drop what was kept so memory stays flat on long runs.
        for g in (stream.loss, stream.grad_norm, stream.lr, stream.steps):
            g.n = 0
        if stream.xy is not None:
            stream.xy.n = 0
    return {k: ((lo[k], hi[k]) if lo[k] <= hi[k] else None) for k in lo}


def _optimizer_label(name: str) -> str:
    from .optimizers import OPTIMIZERS
    return OPTIMIZERS.get(name).label


# ---- MNIST ----------------------------------------------------------------------------------------------

STEPS_HEADER = ["run", "step", "epoch", "loss", "lr", "grad_norm"]
# train_loss: eval mode; train_loss_dropout: train mode, same digits and weights; batch_loss_mean: the mean of the
# mini-batch losses since the previous evaluation (see engine.training.EvalPoint).
EVALS_HEADER = ["run", "step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "train_loss_dropout",
                "patience_count", "lr", "batch_loss_mean"]
# RunSummary fields that depend on the clock, not on the run: left out of files that must repeat exactly.
CLOCK_FIELDS = {"wall_time", "elapsed"}


@dataclass
class RunTrace:
    label: str
    cfg: TrainConfig
    step: Growing = field(default_factory=lambda: Growing((), np.float64))
    epoch: Growing = field(default_factory=lambda: Growing((), np.float64))
    loss: Growing = field(default_factory=lambda: Growing((), np.float64))
    lr: Growing = field(default_factory=lambda: Growing((), np.float64))
    grad_norm: Growing = field(default_factory=lambda: Growing((), np.float64))
    evals: list[EvalPoint] = field(default_factory=list)
    summary: RunSummary | None = None


def _is(record: Any, kind: str) -> bool:
    from . import training
    return isinstance(record, getattr(training, kind))


class MnistStream:
    """Trains a session's MNIST runs side by side, a fixed number of steps at a time.

    Each run is its own generator (runs are independent even when interleaved; see engine.training);
    ``advance_to(step)`` brings every run that has not finished to that step. CSV rows go to
    ``steps.csv`` and ``evals.csv`` when a folder is given; ``summary.json`` is written by ``finish``.
    """

    def __init__(self, runs: Sequence[TrainConfig], csv_dir: str | os.PathLike | None = None):
        self.runs = list(runs)
        labels = [r.display_label for r in self.runs]
        if len(set(labels)) < len(labels):
            labels = [f"{i + 1}: {label}" for i, label in enumerate(labels)]
        import torch

        from .training import prepare_data, run_training
        from .training_process import TRAINING_THREADS
        torch.set_num_threads(TRAINING_THREADS)  # as the window's workers: the same numbers
        self.traces = [RunTrace(label, cfg) for label, cfg in zip(labels, self.runs)]
        # Data prepared here (once per distinct split, shared by runs that agree on it) so that every
        # run's number of steps is known exactly before the first frame.
        prepared: dict[tuple, Any] = {}
        self.run_steps = []
        self._gens = []
        for cfg in self.runs:
            key = (cfg.dataset, cfg.dataset_path, tuple(sorted(getattr(cfg, "dataset_params", {}).items())),
                   cfg.train_size, cfg.val_fraction, cfg.seed)
            if key not in prepared:
                prepared[key] = prepare_data(cfg)
            data = prepared[key]
            n = len(data.x_train)
            batch = n if cfg.optimizer.name == "gd" else min(cfg.batch_size, n)
            self.run_steps.append(cfg.epochs * math.ceil(n / max(batch, 1)))
            self._gens.append(run_training(cfg, data))
        self._pending: list[Any] = [None] * len(self.runs)
        self.csv_dir = Path(csv_dir) if csv_dir is not None else None
        self.steps_sink = CsvSink(self.csv_dir / "steps.csv", STEPS_HEADER) if self.csv_dir else None
        self.evals_sink = CsvSink(self.csv_dir / "evals.csv", EVALS_HEADER) if self.csv_dir else None
        self.total_steps = max(self.run_steps)  # the longest run, if none stops early

    @staticmethod
    def _estimate(cfg: TrainConfig) -> int:
        from .session import estimated_steps
        return estimated_steps(cfg) or cfg.epochs * 100

    @property
    def done(self) -> bool:
        return all(t.summary is not None for t in self.traces)

    def advance_to(self, step: int) -> None:
        """Every run that has not finished takes its steps up to ``step``, with the evaluations (and the
        summary) that come right after that step: what the GUI would show at that step."""
        for i, trace in enumerate(self.traces):
            while trace.summary is None:
                record = self._peek(i)
                if record is None or (_is(record, "TrainStep") and record.step > step):
                    break
                self._pending[i] = None
                self._add(trace, record)

    def _peek(self, i: int) -> Any:
        if self._pending[i] is None:
            try:
                self._pending[i] = next(self._gens[i])
            except StopIteration:
                return None
        return self._pending[i]

    def _next(self, i: int) -> Any:
        if self._pending[i] is not None:
            record, self._pending[i] = self._pending[i], None
            return record
        return next(self._gens[i])

    def _add(self, trace: RunTrace, r: Any) -> None:
        if _is(r, "TrainStep"):
            trace.step.append(r.step)
            trace.epoch.append(r.epoch)
            trace.loss.append(r.loss)
            trace.lr.append(r.lr)
            trace.grad_norm.append(r.grad_norm)
            if self.steps_sink:
                self.steps_sink.write((trace.label, r.step, r.epoch, r.loss, r.lr, r.grad_norm))
        elif _is(r, "EvalPoint"):
            trace.evals.append(r)
            if self.evals_sink:
                self.evals_sink.write((trace.label, r.step, r.epoch, r.train_loss, r.train_acc, r.val_loss,
                                       r.val_acc, r.train_loss_dropout, r.patience_count, r.lr, r.batch_loss_mean))
        elif _is(r, "RunSummary"):
            trace.summary = r

    def finish(self) -> Path | None:
        for i, trace in enumerate(self.traces):
            while trace.summary is None:
                try:
                    record = self._next(i)
                except StopIteration:
                    break
                self._add(trace, record)
        if self.csv_dir is None:
            return None
        self.steps_sink.close()
        self.evals_sink.close()
        runs = []
        for t in self.traces:
            summary = {k: v for k, v in vars(t.summary).items() if k not in CLOCK_FIELDS} if t.summary else {}
            runs.append({"label": t.label, "training": t.cfg.to_dict(), "summary": summary})
        return write_json(self.csv_dir / "summary.json", {"runs": runs})

    def abort(self) -> None:
        for sink in (self.steps_sink, self.evals_sink):
            if sink is not None:
                sink.abort()


# ---- whole sessions, without a screen ------------------------------------------------------------------

def estimated_total(session: Session, view: str | None = None) -> int:
    """Steps a session's view will take (MNIST: an estimate where the data set is not the bundled one)."""
    if (view or session.view) == "landscape":
        return session.landscape.steps
    return max(MnistStream._estimate(r) for r in session.mnist_runs)


def write_session_copy(session: Session, folder: str | os.PathLike) -> Path:
    """The session that produced a folder's files, beside them (so the run can be repeated), stamped with
    the versions of the app, torch and numpy that ran it."""
    from .session import save_session
    return save_session(session, Path(folder) / "session.json")


def run_session(session: Session, out: str | os.PathLike, view: str | None = None,
                progress: Callable[[int, str], None] | None = None) -> list[Path]:
    """CSV (and JSON) outputs of a session's view, no video. Returns the files written."""
    view = view or session.view
    out = Path(out)
    written = []
    if view == "landscape":
        stream = LandscapeStream(session.landscape, out / "trajectories.csv")
        try:
            total = session.landscape.steps
            chunk = max(1, total // 100)
            for target in range(0, total + chunk, chunk):
                stream.advance_to(min(target, total))
                if progress:
                    progress(min(target, total), "")
            written.append(stream.finish())
        except BaseException:
            stream.abort()
            raise
    else:
        stream = MnistStream(session.mnist_runs, out)
        try:
            total = stream.total_steps
            chunk = max(1, total // 100)
            target = 0
            while not stream.done:
                target += chunk
                stream.advance_to(target)
                if progress:
                    progress(min(target, total), _mnist_status(stream))
            written += [out / "steps.csv", out / "evals.csv", stream.finish()]
        except BaseException:
            stream.abort()
            raise
    written.append(write_session_copy(session.replace(view=view), out))
    return written


def _mnist_status(stream: MnistStream) -> str:
    parts = []
    for t in stream.traces:
        if t.evals:
            parts.append(f"{t.label}: val acc {t.evals[-1].val_acc:.1%}")
    return "; ".join(parts[:3])


# ---- video ----------------------------------------------------------------------------------------------

class VideoWriter:
    """Frames (H, W, 3 or 4 uint8 arrays) to MP4 (H.264, yuv420p) or GIF, at a fixed frame rate.

    ``pixel_format`` is the layout of the arrays given to ``write``: "rgb24", "bgra" (a QImage
    Format_RGB32/ARGB32 buffer on little-endian machines) or "rgba". The file appears under its
    name only when ``close`` succeeds (written aside, then renamed).
    """

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: int = 30,
                 pixel_format: str = "rgb24", crf: int = 20, preset: str = "veryfast", threaded: bool = False):
        import av  # PyAV: FFmpeg with libx264 and the GIF encoder, as a wheel

        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_SUFFIXES:
            from .registry import ConfigError
            raise ConfigError("video", f"must end in .mp4 or .gif, got {self.path.name!r}")
        if width % 2 or height % 2:
            raise ValueError(f"H.264 needs even dimensions, got {width}x{height}")
        self.width, self.height, self.fps = width, height, int(fps)
        self.gif = suffix == ".gif"
        self.pixel_format = pixel_format
        self.frames = 0
        self._encoded = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.part{suffix}")
        self._av = av
        self._container = av.open(str(self.tmp), mode="w")
        if self.gif:
            self._stream = self._container.add_stream("gif", rate=Fraction(self.fps))
            self._stream.pix_fmt = "pal8"
            self._palette: GifPalette | None = None
        else:
            self._stream = self._container.add_stream("libx264", rate=Fraction(self.fps))
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(crf), "preset": preset}
            self._stream.codec_context.thread_count = 0  # x264 picks the number of threads
        self._stream.width, self._stream.height = width, height
        self._closed = False
        # Threaded: frames are copied into a short queue and encoded by a worker thread, so that the
        # caller paints frame k + 1 while frame k is encoded (FFmpeg runs without the GIL).
        self._queue = None
        self._error: BaseException | None = None
        if threaded:
            import queue
            import threading
            self._queue = queue.Queue(maxsize=4)
            self._thread = threading.Thread(target=self._work, name="video-encoder", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        while True:
            image = self._queue.get()
            if image is None:
                return
            if self._error is None:
                try:
                    self._encode(image)
                except BaseException as exc:  # handed to the caller by write() or close()
                    self._error = exc

    def write(self, image: np.ndarray) -> None:
        if image.shape[0] != self.height or image.shape[1] != self.width:
            raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, the video {self.width}x{self.height}")
        if self._queue is None:
            self._encode(image)
            return
        if self._error is not None:
            raise self._error
        self._queue.put(np.array(image, copy=True))  # the caller may reuse its buffer at once
        self.frames += 1

    def _encode(self, image: np.ndarray) -> None:
        av = self._av
        if self.gif:
            rgb = _to_rgb(image, self.pixel_format)
            if self._palette is None:
                self._palette = GifPalette.from_image(rgb)
            frame = av.VideoFrame.from_ndarray(self._palette.index(rgb), format="pal8")
        else:
            fmt = self.pixel_format
            arr = np.ascontiguousarray(image if fmt != "rgb24" or image.shape[2] == 3 else image[..., :3])
            frame = av.VideoFrame.from_ndarray(arr, format=fmt)
        frame.pts = self._encoded
        frame.time_base = Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._encoded += 1
        if self._queue is None:
            self.frames += 1

    def _drain(self) -> None:
        if self._queue is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def close(self) -> Path:
        if self._closed:
            return self.path
        self._drain()
        if self._error is not None:
            self.abort()
            raise self._error
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._closed = True
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._queue is not None:
            self._error = self._error or RuntimeError("aborted")
            self._drain()
        if not self._closed:
            try:
                self._container.close()
            except Exception:
                pass
            self._closed = True
        try:
            os.unlink(self.tmp)
        except OSError:
            pass

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _to_rgb(image: np.ndarray, pixel_format: str) -> np.ndarray:
    if pixel_format == "bgra":
        return image[..., 2::-1]
    return image[..., :3]


class GifPalette:
    """One 256-colour palette for a whole GIF (no flicker), chosen from the first frame.

    Median cut over the frame's colours, with the colour-blind-safe line colours always included, and
    a 32x32x32 lookup table so that mapping a frame to palette indices is one numpy gather.
    """

    ALWAYS = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442", "#000000", "#FFFFFF")

    def __init__(self, colours: np.ndarray):
        self.colours = colours.astype(np.uint8)  # (256, 3)
        grid = (np.arange(32) * 8 + 4).astype(np.int32)
        cells = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
        pal = self.colours.astype(np.int32)
        lut = np.empty(len(cells), dtype=np.uint8)
        for start in range(0, len(cells), 4096):
            d = ((cells[start:start + 4096, None, :] - pal[None, :, :]) ** 2).sum(-1)
            lut[start:start + 4096] = d.argmin(1)
        self.lut = lut
        argb = np.zeros((256, 4), dtype=np.uint8)
        argb[:, 0] = 255
        argb[:, 1:] = self.colours
        self.argb = argb

    @classmethod
    def from_image(cls, rgb: np.ndarray, n: int = 256) -> "GifPalette":
        fixed = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in cls.ALWAYS], dtype=np.float64)
        pixels = rgb.reshape(-1, 3)[:: max(1, rgb.shape[0] * rgb.shape[1] // 200_000)].astype(np.float64)
        boxes = [pixels]
        while len(boxes) < n - len(fixed):
            spans = [(b.max(0) - b.min(0)).max() if len(b) > 1 else -1 for b in boxes]
            i = int(np.argmax(spans))
            if spans[i] <= 0:
                break
            b = boxes.pop(i)
            axis = int(np.argmax(b.max(0) - b.min(0)))
            b = b[np.argsort(b[:, axis], kind="stable")]
            mid = len(b) // 2
            boxes += [b[:mid], b[mid:]]
        colours = np.concatenate([fixed, np.array([b.mean(0) for b in boxes if len(b)])])
        out = np.zeros((n, 3))
        out[: min(n, len(colours))] = colours[:n]
        return cls(np.clip(np.round(out), 0, 255))

    def index(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = rgb[..., 0].astype(np.int32) >> 3
        g = rgb[..., 1].astype(np.int32) >> 3
        b = rgb[..., 2].astype(np.int32) >> 3
        return np.ascontiguousarray(self.lut[(r << 10) | (g << 5) | b]), self.argb


def probe_video(path: str | os.PathLike) -> dict[str, Any]:
    """Decode a video back: {"frames", "width", "height", "codec", "fps", "duration"} (for tests and --check)."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = 0
        width = height = 0
        for frame in container.decode(stream):
            frames += 1
            width, height = frame.width, frame.height
        rate = stream.average_rate or stream.guessed_rate
        return {"frames": frames, "width": width, "height": height, "codec": stream.codec_context.name,
                "fps": float(rate) if rate else None,
                "duration": float(stream.duration * stream.time_base) if stream.duration else None}


# ---- the `render` command's arguments (parsed here and, for video, again in the Qt process) ------------

RENDER_THEMES = ("default", "presenter-light", "presenter-dark")


def add_render_arguments(parser) -> None:
    parser.add_argument("session", help="a session file (.json) or a preset name (python main.py presets)")
    parser.add_argument("--video", help="write a clip: out.mp4 (H.264) or out.gif")
    parser.add_argument("--csv", dest="csv", metavar="DIR", help="write the run's CSVs and session.json to DIR")
    parser.add_argument("--fps", type=int, help="frames per second (default: the session's, usually 30)")
    parser.add_argument("--steps-per-frame", type=int, help="optimiser steps per frame (default: the session's)")
    parser.add_argument("--size", default="720p", help="720p, 1080p or WIDTHxHEIGHT (default 720p)")
    parser.add_argument("--seconds", type=float, help="clip length; the last state is held if the run ends first")
    parser.add_argument("--theme", choices=RENDER_THEMES, help="default, presenter-light or presenter-dark")
    parser.add_argument("--title", help="title over the clip (default: the session's title; '' for none)")
    parser.add_argument("--no-equation", action="store_true", help="leave the function's formula out")
    parser.add_argument("--view", choices=["landscape", "mnist"], help="which view to render (default: the session's)")
    parser.add_argument("--steps", type=int, help="2D: override the number of steps")
    parser.add_argument("--epochs", type=int, help="MNIST: override every run's epochs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def render_argv(args) -> list[str]:
    """The parsed arguments back as a command line (for the Qt process that paints the video)."""
    out = [str(args.session)]
    for flag, value in (("--video", args.video), ("--csv", args.csv), ("--fps", args.fps),
                        ("--steps-per-frame", args.steps_per_frame), ("--size", args.size),
                        ("--seconds", args.seconds), ("--theme", args.theme), ("--title", args.title),
                        ("--view", args.view), ("--steps", args.steps), ("--epochs", args.epochs)):
        if value is not None:
            out += [flag, str(value)]
    if args.no_equation:
        out.append("--no-equation")
    if args.quiet:
        out.append("--quiet")
    return out


def check_render_args(args) -> None:
    """Refuse bad flags with the field named, before any session is loaded or process started."""
    from .registry import ConfigError
    if args.video is None and args.csv is None:
        raise ConfigError("render", "nothing to write: give --video FILE and/or --csv DIR")
    if args.video is not None and Path(args.video).suffix.lower() not in VIDEO_SUFFIXES:
        raise ConfigError("video", f"must end in .mp4 or .gif, got {args.video!r}")
    if args.seconds is not None and not 0 < args.seconds <= 3600:
        raise ConfigError("seconds", f"must be more than 0 and at most 3600, got {args.seconds:g}")
    for name, value, lo, hi in (("fps", args.fps, 1, 120), ("steps_per_frame", args.steps_per_frame, 1, 10**6)):
        if value is not None and not lo <= value <= hi:
            raise ConfigError(name, f"must be between {lo} and {hi:,}, got {value}")
    parse_size(args.size)


def session_for_args(args) -> Session:
    """The session named by ``args.session`` (file or preset) with --steps/--epochs applied."""
    from .presets import resolve_session
    session = resolve_session(args.session)
    if getattr(args, "steps", None) is not None:
        session = session.with_landscape(steps=args.steps)
    if getattr(args, "epochs", None) is not None:
        session = session.with_runs(epochs=args.epochs)
    return session
