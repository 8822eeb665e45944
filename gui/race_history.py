"""What the 2D race draws and exports, appended frame by frame (see RaceHistory)."""
from __future__ import annotations

import warnings

import numpy as np

from engine.landscape import LandscapeFrame

from .series import Growing, decimate, thin_path

TRAIL_STEPS = 20  # a cloud's particles trail their last this many steps
MAX_TRAIL_TRAJECTORIES = 1000  # trails for at most this many particles per optimiser; heads for all


class RaceHistory:
    """Everything the 2D plots draw, appended frame by frame.

    Memory: for every step only per-optimiser numbers are kept (the mean loss, gradient norm and rate the
    curves draw, and the first trajectory's position, for export). A single start point (N == 1) keeps its
    whole path that way: K x 2 floats a step, small. A cloud (N > 1) keeps, besides, only what its trails
    draw: the last TRAIL_STEPS + 1 positions of its first MAX_TRAIL_TRAJECTORIES particles, in a ring, so a
    long cloud run stays flat in memory instead of growing by K x N x 2 floats a step. Heads come from the
    newest frame, which is kept whole.
    """

    def __init__(self, k: int, n: int, trail: int = 0):
        self.k, self.n = k, n
        self.steps = Growing((), np.int64)
        self.xy = Growing((k, 1, 2))  # the first trajectory's whole path (the only one when n == 1)
        self.loss = Growing((k,))
        self.grad_norm = Growing((k,))
        self.lr = Growing((k,))
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
        self.steps.extend(np.array([f.step for f in frames]))
        self.xy.extend(np.stack([f.xy[:, :1] for f in frames]))
        with warnings.catch_warnings():
            # A fully diverged optimiser has no finite value to average: NaN is the honest answer.
            warnings.simplefilter("ignore", RuntimeWarning)
            self.loss.extend(np.stack([np.nanmean(f.loss, axis=1) for f in frames]))
            self.grad_norm.extend(np.stack([np.nanmean(f.grad_norm, axis=1) for f in frames]))
        self.lr.extend(np.stack([f.lr for f in frames]))
        if self._ring is not None:
            cap = len(self._ring)
            for f in frames[-cap:]:
                self._ring[self._written % cap] = f.xy[:, :self.trail_n]
                self._written += 1
        self.prev = frames[-2] if len(frames) >= 2 else self.last
        self.last = frames[-1]

    def path(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Optimiser j's first trajectory, thinned for drawing: (x, y), at most MAX_PATH_POINTS points."""
        xy = self.xy.view
        return thin_path(xy[:, j, 0, 0], xy[:, j, 0, 1])

    def curve(self, name: str, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of series ``name`` ("loss", "grad_norm" or "lr") for optimiser j, decimated for
        drawing (peaks kept)."""
        return decimate(self.steps.view.astype(np.float64), getattr(self, name).view[:, j])

    def trail(self) -> np.ndarray:
        """(L, K, trail_n, 2): the newest L <= TRAIL_STEPS + 1 positions of the trailed particles, oldest first."""
        if self._ring is None:
            return np.zeros((0, self.k, 0, 2), dtype=np.float32)
        cap = len(self._ring)
        count = min(self._written, cap)
        idx = np.arange(self._written - count, self._written) % cap
        return self._ring[idx]

    def nbytes(self) -> int:
        """Bytes held by the history's own buffers (frames aside)."""
        grown = sum(b._data.nbytes for b in (self.steps, self.xy, self.loss, self.grad_norm, self.lr))
        return grown + (self._ring.nbytes if self._ring is not None else 0)
