"""Buffers for what the plots draw.

Growing: an array appended per record, read as a view, doubled when full (short runs: MNIST curves).
For runs without a length limit (the 2D race): SpillTable keeps the whole series on disk for export,
PeakBuckets and ShapePath keep bounded, decimated copies for drawing, updated as rows arrive.
"""
from __future__ import annotations

import logging
import os
import tempfile
import warnings
import weakref

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


# ---- long runs: whole on disk, bounded in RAM ----------------------------------------------------------

log = logging.getLogger("optiscope")

MAX_CURVE_POINTS = 4000  # a drawn curve has at most this many points (as decimate's default)


class SpillTable:
    """An append-only table of fixed-size records (one numpy structured dtype), kept whole but not in RAM.

    Why this design: a race's exported series grow by a few hundred bytes a step without end, while the
    plots only ever draw bounded, decimated copies (PeakBuckets, ShapePath) and the whole series is read
    only by an export. So the newest ``chunk_rows`` records sit in a fixed in-RAM buffer, and each full
    buffer is appended to an unnamed temporary file (``tempfile.TemporaryFile``: it has no name, so the
    OS frees it when it is closed or the process dies, and a crash leaves nothing behind in the temp dir).
    An export reads it back with ``pread`` a chunk at a time, so even exporting does not need the whole
    run in memory (a memmap would map it whole and grow the resident set as the export touches it).
    If no temporary file can be made or written (temp dir unwritable, disk full), the chunks stay in RAM
    with a logged warning: the run goes on and only memory grows, rather than the app failing mid-run.
    """

    def __init__(self, dtype, chunk_rows: int = 8192, tmpdir: str | None = None):
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        self.dtype = np.dtype(dtype)
        self.chunk_rows = int(chunk_rows)
        self.tmpdir = tmpdir
        self.n = 0
        self._tail = np.zeros(self.chunk_rows, self.dtype)
        self._fill = 0
        self._file = None
        self._file_rows = 0
        self._ram: list[np.ndarray] = []  # chunks kept in RAM once the temporary file failed
        self._in_ram = False
        self._finalizer: weakref.finalize | None = None
        self.closed = False

    # -- writing --
    def extend(self, records: np.ndarray) -> None:
        if self.closed:
            raise ValueError("the table is closed")
        records = np.asarray(records, dtype=self.dtype)
        done = 0
        while done < len(records):
            take = min(self.chunk_rows - self._fill, len(records) - done)
            self._tail[self._fill:self._fill + take] = records[done:done + take]
            self._fill += take
            done += take
            self.n += take
            if self._fill == self.chunk_rows:
                self._spill()

    def _spill(self) -> None:
        if not self._in_ram:
            try:
                if self._file is None:
                    self._file = tempfile.TemporaryFile(prefix="optiscope-", dir=self.tmpdir, buffering=0)
                    self._finalizer = weakref.finalize(self, self._file.close)
                _write_all(self._file, self._tail)
                self._file_rows += self.chunk_rows
                self._fill = 0
                return
            except OSError as exc:
                # Rows already in the file stay readable (reads stop at _file_rows); later chunks stay in RAM.
                log.warning("cannot spill the run's history to a temporary file (%s); keeping it in memory", exc)
                self._in_ram = True
        self._ram.append(self._tail.copy())
        self._fill = 0

    # -- reading --
    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Records [start, stop) as a fresh array."""
        if self.closed:
            raise ValueError("the table is closed")
        stop = self.n if stop is None else min(stop, self.n)
        start = max(0, start)
        out = np.empty(max(0, stop - start), self.dtype)
        if len(out) == 0:
            return out
        pos = start
        # the file: rows [0, _file_rows)
        if pos < self._file_rows:
            end = min(stop, self._file_rows)
            _read_all(self._file, out[: end - pos], pos * self.dtype.itemsize)
            pos = end
        # RAM chunks after a failed spill: rows [_file_rows, _file_rows + len(_ram) * chunk_rows)
        while pos < stop and pos < self.n - self._fill:
            c, off = divmod(pos - self._file_rows, self.chunk_rows)
            end = min(stop, self._file_rows + (c + 1) * self.chunk_rows)
            out[pos - start:end - start] = self._ram[c][off:off + end - pos]
            pos = end
        if pos < stop:
            off = pos - (self.n - self._fill)
            out[pos - start:] = self._tail[off:off + stop - pos]
        return out

    def chunks(self, rows: int = 65536):
        """The whole table, ``rows`` records at a time (one empty piece when there is none)."""
        if self.n == 0:
            yield self.read(0, 0)
        for a in range(0, self.n, rows):
            yield self.read(a, a + rows)

    def nbytes(self) -> int:
        """Bytes held in RAM (the temporary file aside)."""
        return self._tail.nbytes + sum(c.nbytes for c in self._ram)

    def close(self) -> None:
        """Give the temporary file and the buffers back; idempotent."""
        if self._finalizer is not None:
            self._finalizer()
        self._file = None
        self._ram = []
        self._tail = np.zeros(0, self.dtype)
        self.closed = True


def _write_all(fh, array: np.ndarray) -> None:
    data = memoryview(np.ascontiguousarray(array).view(np.uint8))
    while data:
        written = fh.write(data)
        if not written:
            raise OSError("short write to the temporary file")
        data = data[written:]


def _read_all(fh, out: np.ndarray, offset: int) -> None:
    buf = memoryview(out.view(np.uint8))
    if not hasattr(os, "preadv"):  # Windows: seek there and back, since appends write at the position
        end = fh.tell()
        try:
            fh.seek(offset)
            while buf:
                got = fh.readinto(buf)
                if not got:
                    raise OSError("the temporary file ended early")
                buf = buf[got:]
        finally:
            fh.seek(end)
        return
    fd = fh.fileno()
    while buf:
        got = os.preadv(fd, [buf], offset)
        if got <= 0:
            raise OSError("the temporary file ended early")
        buf, offset = buf[got:], offset + got


def _low_key(v: np.ndarray) -> np.ndarray:
    # as decimate: non-finite values lose to any finite one (a bucket of only NaN keeps its first point)
    return np.where(np.isfinite(v), v, np.inf)


def _high_key(v: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(v), v, -np.inf)


class PeakBuckets:
    """Peak-keeping decimation of C columns that is kept up to date as rows arrive, in bounded memory.

    The rows are split into buckets of ``width`` consecutive rows; each bucket keeps, per column, its
    minimum and its maximum (row index, step and value), as ``decimate`` does over the whole series.
    While there are at most ``buckets`` of them the width stays; when they fill up, neighbouring pairs
    merge (min of mins, max of maxes) and the width doubles. So appending costs O(rows appended) amortised,
    drawing O(buckets), whatever the length of the run, and the global minimum and maximum of every column
    are always among the drawn points. With width 1 (the first ``buckets`` rows) every row is drawn.
    """

    def __init__(self, columns: int, buckets: int = (MAX_CURVE_POINTS - 3) // 2):
        self.cap = buckets - buckets % 2  # pairs merge, so an even count
        if self.cap < 2:
            raise ValueError(f"need at least 2 buckets, got {buckets}")
        self.c = columns
        self.width = 1
        self.nb = 0  # completed buckets
        self.n = 0  # rows seen
        # (C, buckets): a column's buckets contiguous, for drawing one column
        shape = (columns, self.cap)
        self._lo_i, self._hi_i = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        self._lo_s, self._hi_s = np.zeros(shape), np.zeros(shape)
        self._lo_v, self._hi_v = np.zeros(shape), np.zeros(shape)
        # the bucket being filled: per column (index, step, value) of its min and max so far
        self._fill = 0
        self._p: list[np.ndarray] = []
        self._newest: tuple[int, float, np.ndarray] | None = None
        self._drawn: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # all columns, until extend

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._lo_i, self._hi_i, self._lo_s, self._hi_s, self._lo_v, self._hi_v))

    def extend(self, steps: np.ndarray, values: np.ndarray) -> None:
        """Append rows: ``steps`` (B,) and ``values`` (B, C)."""
        steps = np.asarray(steps, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(len(steps), self.c)
        b = len(steps)
        if b == 0:
            return
        self._drawn = None
        self._newest = (self.n + b - 1, float(steps[-1]), values[-1].copy())
        at = 0
        while at < b:
            if self._fill or b - at < self.width:
                take = min(self.width - self._fill, b - at)
                self._into_partial(self.n + at, steps[at:at + take], values[at:at + take])
                at += take
                if self._fill == self.width:
                    self._push(*[p[:, None] for p in self._p])
                    self._fill = 0
            else:
                m = min((b - at) // self.width, self.cap - self.nb)
                rows = m * self.width
                self._push(*self._reduce(self.n + at, steps[at:at + rows], values[at:at + rows], m))
                at += rows
            if self.nb == self.cap:
                self._halve()
        self.n += b

    def _reduce(self, first: int, steps, values, m: int):
        """Per column, min and max of m whole buckets of ``width`` rows from row ``first``: (C, m) each."""
        w = self.width
        v = values.reshape(m, w, self.c)
        s = steps.reshape(m, w)
        rows = np.arange(m)[:, None]
        base = first + rows * w
        a = np.argmin(_low_key(v), axis=1)
        z = np.argmax(_high_key(v), axis=1)
        out = (base + a, s[rows, a], np.take_along_axis(v, a[:, None], axis=1)[:, 0],
               base + z, s[rows, z], np.take_along_axis(v, z[:, None], axis=1)[:, 0])
        return tuple(x.T for x in out)

    def _into_partial(self, first: int, steps, values) -> None:
        a = np.argmin(_low_key(values), axis=0)
        z = np.argmax(_high_key(values), axis=0)
        cols = np.arange(self.c)
        new = [first + a, steps[a], values[a, cols], first + z, steps[z], values[z, cols]]
        if self._fill == 0:
            self._p = new
        else:
            p = self._p
            lo = _low_key(new[2]) < _low_key(p[2])  # ties keep the earlier point, as argmin does
            hi = _high_key(new[5]) > _high_key(p[5])
            self._p = [np.where(lo, new[0], p[0]), np.where(lo, new[1], p[1]), np.where(lo, new[2], p[2]),
                       np.where(hi, new[3], p[3]), np.where(hi, new[4], p[4]), np.where(hi, new[5], p[5])]
        self._fill += len(steps)

    def _push(self, lo_i, lo_s, lo_v, hi_i, hi_s, hi_v) -> None:
        m = lo_i.shape[1]
        sl = slice(self.nb, self.nb + m)
        self._lo_i[:, sl], self._lo_s[:, sl], self._lo_v[:, sl] = lo_i, lo_s, lo_v
        self._hi_i[:, sl], self._hi_s[:, sl], self._hi_v[:, sl] = hi_i, hi_s, hi_v
        self.nb += m

    def _halve(self) -> None:
        half, nb = self.nb // 2, self.nb
        for idx, st, val, better in ((self._lo_i, self._lo_s, self._lo_v, lambda r, l: _low_key(r) < _low_key(l)),
                                     (self._hi_i, self._hi_s, self._hi_v, lambda r, l: _high_key(r) > _high_key(l))):
            right = better(val[:, 1:nb:2], val[:, 0:nb:2])  # ties keep the left (earlier) point
            for arr in (idx, st, val):
                arr[:, :half] = np.where(right, arr[:, 1:nb:2], arr[:, 0:nb:2])
        self.nb = half
        self.width *= 2

    def _all_columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, values, keep), (C, 2 nb) each: every bucket's min and max in row order, for all columns
        at once (one pass a frame, not one per column)."""
        if self._drawn is None:
            nb = self.nb
            lo_i, hi_i = self._lo_i[:, :nb], self._hi_i[:, :nb]
            lo_first = lo_i <= hi_i

            def in_order(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
                out = np.empty((self.c, nb, 2), dtype=lo.dtype)
                out[:, :, 0] = np.where(lo_first, lo[:, :nb], hi[:, :nb])
                out[:, :, 1] = np.where(lo_first, hi[:, :nb], lo[:, :nb])
                return out.reshape(self.c, 2 * nb)

            keep = np.ones((self.c, nb, 2), dtype=bool)
            keep[:, :, 1] = lo_i != hi_i  # a bucket whose min and max are one row draws it once
            self._drawn = (in_order(self._lo_s, self._hi_s), in_order(self._lo_v, self._hi_v),
                           keep.reshape(self.c, 2 * nb))
        return self._drawn

    def column(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of column c to draw: each bucket's min and max in row order, then the newest row."""
        steps, values, keep = self._all_columns()
        s, v = steps[c][keep[c]], values[c][keep[c]]
        last = max(self._lo_i[c, self.nb - 1], self._hi_i[c, self.nb - 1]) if self.nb else -1
        extra_s, extra_v = [], []
        if self._fill:
            p = self._p
            lo = (int(p[0][c]), float(p[1][c]), float(p[2][c]))
            hi = (int(p[3][c]), float(p[4][c]), float(p[5][c]))
            for pi, ps, pv in ([lo] if lo[0] == hi[0] else sorted([lo, hi])):
                extra_s.append(ps), extra_v.append(pv)
                last = pi
        if self._newest is not None:
            ni, ns, nv = self._newest
            if ni != last:
                extra_s.append(ns), extra_v.append(float(nv[c]))
        if not extra_s:
            return s, v
        return np.concatenate([s, extra_s]), np.concatenate([v, extra_v])


TAIL_PATH_STEPS = 500  # the newest steps of a trajectory are drawn whole (what the viewer watches)
_TAIL_FLUSH = 100  # the tail is handed to the buckets this many steps at a time (the tail draws 500 to 599 steps)
# a bucket keeps up to five points of its stretch, in step order: its least and greatest x and y, and its
# last finite point (so the path goes on from where the stretch really ended)
_SLOTS = 5
_XMIN, _XMAX, _YMIN, _YMAX, _LAST = range(_SLOTS)


class ShapePath:
    """K 2D paths thinned for drawing as they grow, keeping their shape, in bounded memory.

    Why not every k-th point: a path that oscillates faster than the stride, makes an
    excursion between two kept points, or circles back, is drawn as straight chords that cut its corners,
    shrink its spread and move its end. Here each path is drawn as

    - its start (its first finite point), exactly;
    - older history in buckets of ``width`` consecutive steps, each keeping, in step order, the points
      where the path's x and y are least and greatest in that stretch, and its last finite point. The
      drawn path therefore spans exactly the bounding box of the whole path (ties keep the earlier step)
      and visits every stretch's extremes. When ``buckets`` buckets are full, neighbouring pairs merge
      (min of mins, max of maxes, the later last point) and the width doubles, as PeakBuckets does for
      curves: appending costs O(steps appended) amortised, memory is fixed;
    - the newest ``tail`` to ``tail + flush - 1`` steps whole, the newest last. Steps leave the tail for
      the buckets ``flush`` at a time, at step counts fixed by the count alone, so what is drawn depends
      only on the rows appended, not on how they were batched.

    Non-finite points (a diverged trajectory) are never drawn: a path ends at its last finite point.
    The K paths keep their own extremes, so they are drawn with different numbers of points (``path(j)``).
    A path of up to ``tail`` steps is drawn whole, and no path is drawn with more than ``max_points()``.
    """

    def __init__(self, k: int, buckets: int | None = None, tail: int = TAIL_PATH_STEPS, flush: int = _TAIL_FLUSH):
        if tail < 1 or flush < 1:
            raise ValueError(f"tail and flush must be positive, got {tail}, {flush}")
        if buckets is None:  # all drawn points within MAX_PATH_POINTS
            buckets = (MAX_PATH_POINTS - 1 - tail - (flush - 1) - _SLOTS) // _SLOTS
        self.cap = buckets - buckets % 2  # pairs merge, so an even count
        if self.cap < 2:
            raise ValueError(f"need at least 2 buckets, got {buckets}")
        self.k, self.tail, self.flush = k, tail, flush
        self.width = 1
        self.nb = 0  # completed buckets
        self.done = 0  # rows handed to the buckets: [0, done); the tail holds [done, n)
        self.n = 0
        self._rows = np.zeros((self.cap, k, _SLOTS), np.int64)  # per bucket and path: the row of each slot
        self._xy = np.zeros((self.cap, k, _SLOTS, 2))
        self._fill = 0  # rows in the bucket being filled
        self._p_rows = np.zeros((k, _SLOTS), np.int64)
        self._p_xy = np.zeros((k, _SLOTS, 2))
        self._pend = np.zeros((tail + flush, k, 2))  # the tail: rows [done, n)
        self._start_row = np.full(k, -1, np.int64)  # per path: its first finite row (-1: none yet)
        self._start = np.full((k, 2), np.nan)
        self._old: tuple[np.ndarray, np.ndarray] | None = None  # completed buckets, drawn: until they change
        self._drawn: dict[int, np.ndarray] = {}  # path(j), until extend

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._rows, self._xy, self._p_rows, self._p_xy, self._pend,
                                      self._start_row, self._start))

    def max_points(self) -> int:
        return 1 + _SLOTS * (self.cap + 1) + self.tail + self.flush - 1

    # -- appending --
    def extend(self, values: np.ndarray) -> None:
        """Append rows: ``values`` (B, K, 2)."""
        values = np.asarray(values, dtype=np.float64).reshape(-1, self.k, 2)
        b = len(values)
        if b == 0:
            return
        self._drawn.clear()
        valid = np.isfinite(values).all(axis=2)  # (B, K)
        new = (self._start_row < 0) & valid.any(axis=0)
        if new.any():
            first = np.argmax(valid, axis=0)
            self._start_row[new] = self.n + first[new]
            self._start[new] = values[first[new], np.flatnonzero(new)]
            self._old = None
        n = self.n + b
        target = max(0, (n - self.tail) // self.flush * self.flush)  # rows [0, target) go to the buckets
        held = self.n - self.done  # rows in the tail now
        if target > self.done:
            from_tail = min(target - self.done, held)
            self._to_buckets(self._pend[:from_tail])
            if target - self.done:  # the rest comes from the new rows
                self._to_buckets(values[:target - self.done])
            keep = max(0, self.n - target)  # tail rows that stay: [target, n)
            if keep:
                self._pend[:keep] = self._pend[held - keep:held].copy()
            held = keep
        newer = values[max(0, target - self.n):]
        self._pend[held:held + len(newer)] = newer
        self.n = n

    def _to_buckets(self, values: np.ndarray) -> None:
        """Hand rows [done, done + len(values)) to the buckets."""
        b = len(values)
        at = 0
        while at < b:
            if self._fill or b - at < self.width:
                take = min(self.width - self._fill, b - at)
                rows, xy = self._reduce(self.done + at, values[at:at + take][None], 1)
                if self._fill:
                    rows, xy = _merge(self._p_rows[None], self._p_xy[None], rows, xy)
                self._p_rows, self._p_xy = rows[0], xy[0]
                self._fill += take
                at += take
                if self._fill == self.width:
                    self._push(self._p_rows[None], self._p_xy[None])
                    self._fill = 0
            else:
                m = min((b - at) // self.width, self.cap - self.nb)
                w = m * self.width
                self._push(*self._reduce(self.done + at, values[at:at + w].reshape(m, self.width, self.k, 2), m))
                at += w
            if self.nb == self.cap:
                self._halve()
        self.done += b

    def _reduce(self, first: int, v: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
        """The slots of m buckets ``v`` (m, w, K, 2) whose first row is ``first``: rows (m, K, 5), xy (m, K, 5, 2)."""
        w = v.shape[1]
        valid = np.isfinite(v).all(axis=3)  # (m, w, K)
        x, y = v[..., 0], v[..., 1]
        idx = np.empty((m, self.k, _SLOTS), np.int64)
        with np.errstate(invalid="ignore"):
            idx[..., _XMIN] = np.argmin(np.where(valid, x, np.inf), axis=1)
            idx[..., _XMAX] = np.argmax(np.where(valid, x, -np.inf), axis=1)
            idx[..., _YMIN] = np.argmin(np.where(valid, y, np.inf), axis=1)
            idx[..., _YMAX] = np.argmax(np.where(valid, y, -np.inf), axis=1)
        idx[..., _LAST] = w - 1 - np.argmax(valid[:, ::-1], axis=1)  # the last row when none is finite
        xy = np.take_along_axis(v[:, :, :, None, :], idx[:, None, :, :, None], axis=1)[:, 0]
        rows = first + np.arange(m)[:, None, None] * w + idx
        return rows, xy

    def _push(self, rows: np.ndarray, xy: np.ndarray) -> None:
        m = len(rows)
        self._rows[self.nb:self.nb + m], self._xy[self.nb:self.nb + m] = rows, xy
        self.nb += m
        self._old = None

    def _halve(self) -> None:
        nb, half = self.nb, self.nb // 2
        rows, xy = _merge(self._rows[0:nb:2], self._xy[0:nb:2], self._rows[1:nb:2], self._xy[1:nb:2])
        self._rows[:half], self._xy[:half] = rows, xy
        self.nb, self.width = half, self.width * 2
        self._old = None

    # -- drawing --
    def path(self, j: int) -> np.ndarray:
        """(P, 2): path j's points to draw, in step order: its start, each older bucket's points, the tail."""
        got = self._drawn.get(j)
        if got is None:
            got = self._drawn[j] = self._draw(j)
        return got

    def rows(self, j: int) -> np.ndarray:
        """The steps (row numbers) of ``path(j)``'s points, for tests and tools: not kept per frame."""
        old_rows, _ = self._old_drawn()
        s = self._start_row[j]
        parts = [[s] if s >= 0 else [], old_rows[j]]
        if self._fill:
            pr, _ = self._partial(j)
            parts.append(pr)
        tail_rows = np.arange(self.done, self.n)
        parts.append(tail_rows[np.isfinite(self._pend[:self.n - self.done, j]).all(axis=1) & (tail_rows > s)])
        return np.concatenate([np.asarray(p, np.int64) for p in parts])

    def _draw(self, j: int) -> np.ndarray:
        s = self._start_row[j]
        if s < 0:
            return np.zeros((0, 2))
        _, old_xy = self._old_drawn()
        parts = [self._start[j][None], old_xy[j]]
        if self._fill:
            parts.append(self._partial(j)[1])
        tail = self._pend[:self.n - self.done, j]
        ok = np.isfinite(tail).all(axis=1)
        if s >= self.done:
            ok &= np.arange(self.done, self.n) > s
        parts.append(tail[ok])
        return np.concatenate(parts)

    def _partial(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self._p_rows[j], kind="stable")
        rows, xy = self._p_rows[j][order], self._p_xy[j][order]
        keep = _drawable(rows[None], xy[None], self._start_row[j:j + 1])[0]
        return rows[keep], xy[keep]

    def _old_drawn(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per path, the rows and points the completed buckets draw, in step order (kept until they change)."""
        if self._old is None:
            nb = self.nb
            rows = self._rows[:nb].transpose(1, 0, 2)  # (K, nb, 5)
            order = np.argsort(rows, axis=2, kind="stable")
            rows = np.take_along_axis(rows, order, axis=2).reshape(self.k, nb * _SLOTS)
            xy = np.take_along_axis(self._xy[:nb].transpose(1, 0, 2, 3), order[..., None], axis=2)
            xy = xy.reshape(self.k, nb * _SLOTS, 2)
            keep = _drawable(rows, xy, self._start_row)
            self._old = ([rows[j][keep[j]] for j in range(self.k)], [xy[j][keep[j]] for j in range(self.k)])
        return self._old


def _drawable(rows: np.ndarray, xy: np.ndarray, start_row: np.ndarray) -> np.ndarray:
    """(K, L) rows in step order -> which to draw: finite, after the path's start (drawn on its own), each row once."""
    keep = np.isfinite(xy).all(axis=2) & (rows > start_row[:, None])
    keep[:, 1:] &= rows[:, 1:] != rows[:, :-1]
    return keep


def _merge(lrows, lxy, rrows, rxy) -> tuple[np.ndarray, np.ndarray]:
    """Slots of buckets ``l`` followed by buckets ``r`` (rows (..., 5), xy (..., 5, 2)): the slots of each pair
    together. Ties keep the earlier point; a non-finite point loses to any finite one."""
    lok, rok = np.isfinite(lxy).all(axis=-1), np.isfinite(rxy).all(axis=-1)
    lx, rx = lxy[..., 0], rxy[..., 0]
    ly, ry = lxy[..., 1], rxy[..., 1]
    right = np.empty(lrows.shape, bool)
    with np.errstate(invalid="ignore"):
        right[..., _XMIN] = np.where(rok, rx, np.inf)[..., _XMIN] < np.where(lok, lx, np.inf)[..., _XMIN]
        right[..., _XMAX] = np.where(rok, rx, -np.inf)[..., _XMAX] > np.where(lok, lx, -np.inf)[..., _XMAX]
        right[..., _YMIN] = np.where(rok, ry, np.inf)[..., _YMIN] < np.where(lok, ly, np.inf)[..., _YMIN]
        right[..., _YMAX] = np.where(rok, ry, -np.inf)[..., _YMAX] > np.where(lok, ly, -np.inf)[..., _YMAX]
    right[..., _LAST] = rok[..., _LAST] | ~lok[..., _LAST]
    return np.where(right, rrows, lrows), np.where(right[..., None], rxy, lxy)
