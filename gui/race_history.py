"""What the 2D race draws and exports, appended frame by frame (see RaceHistory)."""
from __future__ import annotations

import warnings

import numpy as np

from engine.landscape import LandscapeFrame

from .series import MAX_CURVE_POINTS, MAX_PATH_POINTS  # noqa: F401 (the bounds of path() and curve())
from .series import TAIL_PATH_STEPS  # noqa: F401 (drawn whole at the end of path())
from .series import PeakBuckets, ShapePath, SpillTable

TRAIL_STEPS = 20  # a cloud's particles trail their last this many steps
MAX_TRAIL_TRAJECTORIES = 1000  # trails for at most this many particles per optimiser; heads for all
SERIES = ("loss", "grad_norm", "lr")  # the per-optimiser curves, in this order in the drawn columns
CHUNK_STEPS = 8192  # steps per chunk written to the temporary file


class _Column:
    """One exported series, read back whole on demand (``.view``): for tests and small runs. Exports of
    long runs go through ``RaceHistory.chunks`` instead."""

    def __init__(self, table: SpillTable, field: str):
        self._table, self._field = table, field

    def __len__(self) -> int:
        return self._table.n

    @property
    def view(self) -> np.ndarray:
        return self._table.read()[self._field]


class RaceHistory:
    """Everything the 2D plots draw, appended frame by frame, in memory that does not grow with the run.

    Kept per step, for export: the step, the first trajectory's position, and per optimiser the mean loss,
    gradient norm and rate the curves draw (means over the trajectories that have not diverged). These
    go to a SpillTable: a fixed in-RAM chunk, full chunks to an unnamed temporary file, read back only by
    an export (``chunks``), exact. For drawing, bounded copies are kept up to date as frames arrive: each
    path its start, its newest steps whole and older stretches by their extreme points (ShapePath, at most
    MAX_PATH_POINTS) and each curve its min/max per bucket (PeakBuckets, at most MAX_CURVE_POINTS), so a
    frame's drawing costs the same at step 1,000,000 as at step 1,000.

    A cloud (N > 1) keeps, besides, only what its trails draw: the last TRAIL_STEPS + 1 positions of its
    first MAX_TRAIL_TRAJECTORIES particles, in a ring. Heads come from the newest frame, kept whole.

    ``close()`` gives the temporary file back (the panel calls it when it drops a history; a finaliser
    does it otherwise).
    """

    def __init__(self, k: int, n: int, trail: int = 0, chunk_steps: int = CHUNK_STEPS, tmpdir: str | None = None):
        self.k, self.n = k, n
        self._table = SpillTable([("step", np.int64), ("xy", np.float64, (k, 1, 2)),
                                  *((name, np.float64, (k,)) for name in SERIES)], chunk_steps, tmpdir)
        # Views of the whole series, as before: ``len()`` is free, ``.view`` reads the run back.
        self.steps = _Column(self._table, "step")
        self.xy = _Column(self._table, "xy")  # the first trajectory's whole path (the only one when n == 1)
        self.loss, self.grad_norm, self.lr = (_Column(self._table, name) for name in SERIES)
        self._paths = ShapePath(k)
        self._curves = PeakBuckets(len(SERIES) * k)
        self._drawn: dict = {}  # what path() and curve() returned, until the next add
        self._holds, self._close_asked = 0, False
        self.last: LandscapeFrame | None = None
        self.prev: LandscapeFrame | None = None  # the frame before ``last`` (its state, for splitting an update)
        self.trail_steps = (trail or TRAIL_STEPS) if n > 1 else 0
        self.trail_n = min(n, MAX_TRAIL_TRAJECTORIES) if n > 1 else 0
        self._ring = (np.full((self.trail_steps + 1, k, self.trail_n, 2), np.nan, dtype=np.float32)
                      if n > 1 else None)
        self._written = 0  # frames written into the ring in all

    def add(self, frames: list[LandscapeFrame]) -> None:
        if not frames:
            return
        rec = np.empty(len(frames), self._table.dtype)
        rec["step"] = [f.step for f in frames]
        rec["xy"] = np.stack([f.xy[:, :1] for f in frames])
        loss, grad = np.stack([f.loss for f in frames]), np.stack([f.grad for f in frames])
        with warnings.catch_warnings():
            # A fully diverged optimiser has no finite value to average: NaN is the honest answer.
            warnings.simplefilter("ignore", RuntimeWarning)
            if len({(f.loss.dtype, f.grad.dtype) for f in frames}) == 1:
                # One reduction over the batch: the same numbers as frame by frame (each mean runs over
                # the same contiguous row), at a fraction of the per-frame cost.
                rec["loss"] = np.nanmean(loss, axis=2)
                rec["grad_norm"] = np.nanmean(np.linalg.norm(grad, axis=-1), axis=2)
            else:  # frames of mixed precision: each averaged in its own, as they come
                rec["loss"] = np.stack([np.nanmean(f.loss, axis=1) for f in frames])
                rec["grad_norm"] = np.stack([np.nanmean(f.grad_norm, axis=1) for f in frames])
        rec["lr"] = np.stack([f.lr for f in frames])
        self._table.extend(rec)
        self._paths.extend(rec["xy"][:, :, 0])
        self._curves.extend(rec["step"], np.concatenate([rec[name] for name in SERIES], axis=1))
        self._drawn.clear()
        if self._ring is not None:
            cap = len(self._ring)
            for f in frames[-cap:]:
                self._ring[self._written % cap] = f.xy[:, :self.trail_n]
                self._written += 1
        self.prev = frames[-2] if len(frames) >= 2 else self.last
        self.last = frames[-1]

    def path(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Optimiser j's first trajectory, thinned for drawing: (x, y), at most MAX_PATH_POINTS points, in step
        order (not evenly spaced in steps): its start, each older stretch's extreme points, its newest
        TAIL_PATH_STEPS steps whole; non-finite points left out (a diverged path ends at its last finite point)."""
        key = ("path", j)
        if key not in self._drawn:
            pts = self._paths.path(j)
            self._drawn[key] = (pts[:, 0], pts[:, 1])
        return self._drawn[key]

    def curve(self, name: str, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of series ``name`` ("loss", "grad_norm" or "lr") for optimiser j, decimated for
        drawing (each bucket's min and max kept, the newest step last): at most MAX_CURVE_POINTS points."""
        key = (name, j)
        if key not in self._drawn:
            self._drawn[key] = self._curves.column(SERIES.index(name) * self.k + j)
        return self._drawn[key]

    def trail(self) -> np.ndarray:
        """(L, K, trail_n, 2): the newest L <= TRAIL_STEPS + 1 positions of the trailed particles, oldest first."""
        if self._ring is None:
            return np.zeros((0, self.k, 0, 2), dtype=np.float32)
        cap = len(self._ring)
        count = min(self._written, cap)
        idx = np.arange(self._written - count, self._written) % cap
        return self._ring[idx]

    def chunks(self, steps: int = 65536):
        """The whole run for export, ``steps`` at a time: dicts of ``steps`` (S,), ``xy`` (S, K, 1, 2),
        ``loss``, ``grad_norm``, ``lr`` (S, K), exactly as added."""
        for rec in self._table.chunks(steps):
            yield {"steps": rec["step"], "xy": rec["xy"], **{name: rec[name] for name in SERIES}}

    def nbytes(self) -> int:
        """Bytes the history holds in RAM (frames and the temporary file aside): constant over a run."""
        return (self._table.nbytes() + self._paths.nbytes() + self._curves.nbytes()
                + (self._ring.nbytes if self._ring is not None else 0))

    def hold(self):
        """Keep the whole series readable until the returned ``release()``: an export on another thread
        reads it while the panel may drop the history (reset, a new run, a session opened), and a
        ``close()`` asked for meanwhile happens at the release."""
        self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._holds -= 1
            if not self._holds and self._close_asked:
                self._table.close()
        return release

    def close(self) -> None:
        """Give the temporary file back (later, if an export holds it). Drawing state stays (a closed
        history can still be drawn), the whole series is gone: exporting a closed history raises ValueError."""
        if self._holds:
            self._close_asked = True
            return
        self._table.close()

