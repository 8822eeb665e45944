"""Growable numpy buffers for what the plots draw: appended per record, read as views, doubled when full."""
from __future__ import annotations

import numpy as np


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
