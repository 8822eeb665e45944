"""Growable numpy buffers for what the plots draw: appended per record, read as views, doubled when full."""
from __future__ import annotations

import warnings

import numpy as np

MAX_PATH_POINTS = 2000  # a drawn trajectory is thinned to this many points (a 2-px pen costs per segment)


class Growing:
    """An array that grows along axis 0 by doubling, so appends are amortised O(1) and reads are views."""

    def __init__(self, tail_shape: tuple[int, ...] = (), dtype=np.float64, capacity: int = 1024):
        self._data = np.full((capacity, *tail_shape), np.nan, dtype=dtype) if dtype == np.float64 else \
            np.zeros((capacity, *tail_shape), dtype=dtype)
        self.n = 0

    def append(self, value) -> None:
        if self.n == len(self._data):
            grown = np.empty((2 * len(self._data), *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self.n] = self._data
            self._data = grown
        self._data[self.n] = value
        self.n += 1

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=self._data.dtype)
        need = self.n + len(values)
        if need > len(self._data):
            cap = len(self._data)
            while cap < need:
                cap *= 2
            grown = np.empty((cap, *self._data.shape[1:]), dtype=self._data.dtype)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n:need] = values
        self.n = need

    @property
    def view(self) -> np.ndarray:
        return self._data[: self.n]

    def __len__(self) -> int:
        return self.n

    def clear(self) -> None:
        self.n = 0


def positive_or_nan(values: np.ndarray) -> np.ndarray:
    """For log axes: non-positive and non-finite values become NaN, which the curves skip."""
    out = np.array(values, dtype=np.float64, copy=True)
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def finite_or_nan(values: np.ndarray) -> np.ndarray:
    out = np.array(values, dtype=np.float64, copy=True)
    out[~np.isfinite(out)] = np.nan
    return out


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Peak-preserving decimation for drawing: each bucket keeps its min and max, in order.

    Done here rather than by pyqtgraph's clip-to-view + auto-downsampling, which with auto-ranging
    re-enters itself (range change -> new downsampled data -> new bounds -> range change) and can
    spin forever inside a paint once a curve has more points than pixels.
    """
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    size = edges[1:] - edges[:-1]
    # Fixed-size view when buckets divide evenly; otherwise trim the remainder into the last bucket.
    width = int(size.min())
    usable = width * buckets
    yy = y[:usable].reshape(buckets, width)
    finite = np.where(np.isfinite(yy), yy, np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo_idx = np.nanargmin(np.where(np.isnan(finite), np.inf, finite), axis=1)
        hi_idx = np.nanargmax(np.where(np.isnan(finite), -np.inf, finite), axis=1)
    base = np.arange(buckets) * width
    first = np.minimum(lo_idx, hi_idx) + base
    second = np.maximum(lo_idx, hi_idx) + base
    idx = np.empty(2 * buckets, dtype=np.int64)
    idx[0::2], idx[1::2] = first, second
    if usable < n:
        idx = np.concatenate([idx, [n - 1]])
    return x[idx], y[idx]


def thin_path(x: np.ndarray, y: np.ndarray, max_points: int = MAX_PATH_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Every k-th point of a long trajectory for drawing (the newest always kept); the history stays whole."""
    n = len(x)
    if n <= max_points:
        return x, y
    idx = np.unique(np.concatenate([np.linspace(0, n - 1, max_points).astype(np.int64), [n - 1]]))
    return x[idx], y[idx]
