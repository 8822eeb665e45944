"""The 2D race's history: whole and exact for export (spilled to a temporary file), bounded for drawing, and
flat in memory however long the run. Pure numpy: no widgets."""
import csv
import gc
import json
import logging
import warnings

import numpy as np
import pytest

from engine.landscape import LandscapeFrame
from gui.race_history import RaceHistory
from gui.series import MAX_CURVE_POINTS, MAX_PATH_POINTS, TAIL_PATH_STEPS, PeakBuckets, ShapePath

K = 3
LABELS = ["a", "b", "c"]


def _batch(rng, t0, size, k=K, n=1, nan_every=0):
    """``size`` frames from step t0: a random walk, losses spanning decades, some non-finite values."""
    xy = np.cumsum(rng.normal(scale=0.01, size=(size, k, n, 2)), axis=0) + rng.normal(size=(1, k, n, 2))
    loss = rng.lognormal(sigma=3.0, size=(size, k, n))
    if nan_every:
        loss[::nan_every, 1] = np.nan  # a diverged optimiser: its mean is NaN
        loss[1::nan_every, 0, 0] = np.inf
    grad = rng.normal(size=(size, k, n, 2))
    lr = rng.random((size, k))
    return [LandscapeFrame(step=t0 + i, xy=xy[i], loss=loss[i], grad=grad[i], lr=lr[i],
                           diverged_at=np.full((k, n), -1), evals=np.zeros(k)) for i in range(size)]


def _expected(frames):
    """What the history must export for these frames, float64, computed frame by frame as before."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of a diverged optimiser's NaN
        return {"steps": np.array([f.step for f in frames]),
                "xy": np.stack([f.xy[:, 0] for f in frames]).astype(np.float64),
                "loss": np.stack([np.nanmean(f.loss, axis=1) for f in frames]).astype(np.float64),
                "grad_norm": np.stack([np.nanmean(f.grad_norm, axis=1) for f in frames]).astype(np.float64),
                "lr": np.stack([f.lr for f in frames]).astype(np.float64)}


def _feed(h, rng, steps, batch_sizes=(1, 7, 64, 333), n=1, nan_every=0):
    fed, t = [], 0
    while t < steps:
        size = min(int(rng.choice(batch_sizes)), steps - t)
        frames = _batch(rng, t, size, h.k, n, nan_every)
        h.add(frames)
        fed += frames
        t += size
    return fed


def _same(a, b):
    """Equal exactly (no tolerance), NaN where NaN."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def test_a_spilled_run_exports_every_step_exactly(tmp_path):
    rng = np.random.default_rng(1)
    h = RaceHistory(K, 4, chunk_steps=1000)
    fed = _feed(h, rng, 5_321, n=4, nan_every=13)
    assert h._table._file_rows == 5_000, "five whole chunks went to the temporary file"
    want = _expected(fed)
    # the whole series read back, through the attributes tests and tools use
    assert list(h.steps.view) == list(range(5_321))
    for name in ("loss", "grad_norm", "lr"):
        assert _same(getattr(h, name).view, want[name]), name
    assert _same(h.xy.view[:, :, 0], want["xy"])
    # CSV: repr of every float64, NaN and inf spelled out
    rows = list(csv.reader(export_csv(h, tmp_path / "m.csv").open()))
    # a cloud of 4: the first trajectory's position beside the means, and the header says so
    assert rows[0] == ["step", "optimizer", "x_first", "y_first", "mean_loss", "mean_grad_norm", "lr"]
    assert len(rows) == 1 + 5_321 * K
    body = np.array([[float(v) for v in r[2:]] for r in rows[1:]]).reshape(5_321, K, 5)
    assert [int(r[0]) for r in rows[1::K]] == list(range(5_321)) and [r[1] for r in rows[1:1 + K]] == LABELS
    assert _same(body[..., 0], want["xy"][..., 0]) and _same(body[..., 1], want["xy"][..., 1])
    for c, name in enumerate(("loss", "grad_norm", "lr"), start=2):
        assert _same(body[..., c], want[name]), name
    # JSON: one list per series; non-finite values are null
    from gui.export import export_landscape_metrics
    data = json.loads(export_landscape_metrics(h, LABELS, tmp_path / "m.json").read_text())
    assert data["steps"] == list(range(5_321))
    for i, opt in enumerate(data["optimizers"]):
        for name in ("loss", "grad_norm", "lr"):
            got = np.array([np.nan if v is None else v for v in opt[name]])
            ref = np.where(np.isfinite(want[name][:, i]), want[name][:, i], np.nan)
            assert _same(got, ref), (i, name)
        assert _same(opt["x"], want["xy"][:, i, 0]) and _same(opt["y"], want["xy"][:, i, 1])
    h.close()


def export_csv(h, path):
    from gui.export import export_landscape_metrics
    return export_landscape_metrics(h, LABELS, path)


def test_an_unwritable_temp_dir_keeps_the_run_in_memory_with_a_warning(tmp_path, caplog):
    rng = np.random.default_rng(2)
    h = RaceHistory(K, 1, chunk_steps=100, tmpdir=str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING, logger="optiscope"):
        fed = _feed(h, rng, 1_234)
    assert any("temporary file" in r.getMessage() for r in caplog.records)
    assert h._table._file_rows == 0 and len(h._table._ram) == 12
    want = _expected(fed)
    assert _same(h.loss.view, want["loss"]) and _same(h.xy.view[:, :, 0], want["xy"])
    rows = export_csv(h, tmp_path / "m.csv").read_text().splitlines()
    assert len(rows) == 1 + 1_234 * K


def test_a_short_run_is_drawn_whole():
    rng = np.random.default_rng(3)
    h = RaceHistory(K, 1)
    want = _expected(_feed(h, rng, 1_000, nan_every=9))
    for j in range(K):
        x, y = h.path(j)
        assert _same(x, want["xy"][:, j, 0]) and _same(y, want["xy"][:, j, 1])
        for name in ("loss", "grad_norm", "lr"):
            s, v = h.curve(name, j)
            assert _same(s, np.arange(1_000)) and _same(v, want[name][:, j]), name


def test_a_long_run_is_drawn_bounded_with_its_peaks_and_newest_point():
    rng = np.random.default_rng(4)
    h = RaceHistory(K, 1, chunk_steps=4096)
    fed = []
    for total in (30_000, 61_111):
        fed += _feed_from(h, rng, len(fed), total - len(fed))
        want = _expected(fed)
        for j in range(K):
            x, y = h.path(j)
            assert 0 < len(x) <= MAX_PATH_POINTS
            # the path's points are the path's own, in order, from its start to its newest point
            idx = _indices_of(want["xy"][:, j], np.c_[x, y])
            assert idx[0] == 0 and idx[-1] == len(fed) - 1 and np.all(np.diff(idx) > 0)
            assert np.all(np.diff(idx[-TAIL_PATH_STEPS:]) == 1), "the newest steps are drawn whole"
            track = want["xy"][:, j]
            assert _same(np.array([x.min(), y.min()]), track.min(axis=0)), "the path's extent is drawn"
            assert _same(np.array([x.max(), y.max()]), track.max(axis=0)), "the path's extent is drawn"
            for name in ("loss", "grad_norm", "lr"):
                s, v = h.curve(name, j)
                ref = want[name][:, j]
                assert len(s) <= MAX_CURVE_POINTS and np.all(np.diff(s) > 0)
                assert s[-1] == len(fed) - 1 and _same(v[-1], ref[-1]), "the newest point is drawn"
                finite = ref[np.isfinite(ref)]
                assert finite.min() in v and finite.max() in v, "the global peaks are drawn"
                assert _same(v, ref[s.astype(np.int64)]), "drawn points are the series' own"


def _feed_from(h, rng, t0, steps):
    fed, t = [], t0
    while t < t0 + steps:
        size = min(int(rng.choice((5, 50, 500))), t0 + steps - t)
        frames = _batch(rng, t, size, h.k, 1, 0)
        h.add(frames)
        fed += frames
        t += size
    return fed


def _indices_of(track, points):
    """Row of ``track`` each point is (points are exact copies)."""
    lookup = {(float(a), float(b)): i for i, (a, b) in enumerate(track)}
    return np.array([lookup[(float(a), float(b))] for a, b in points])


@pytest.mark.parametrize("buckets", [4, 10, 64])
def test_peak_buckets_equal_a_min_max_decimation_of_the_whole_series(buckets):
    """Built incrementally, in batches of any size, the buckets hold what reducing the whole series at the
    final width gives: per bucket its min and max in order (a bucket of only NaN keeps its first row)."""
    rng = np.random.default_rng(buckets)
    for n in (1, buckets, buckets + 1, 1_000, 12_345):
        values = rng.normal(size=(n, 2))
        values[rng.random((n, 2)) < 0.05] = np.nan
        values[:40:3, 1] = np.nan
        pb = PeakBuckets(2, buckets)
        at = 0
        while at < n:
            size = int(rng.integers(1, 200))
            pb.extend(np.arange(at, min(n, at + size)) * 2.0, values[at:at + size])
            at += size
        w = pb.width
        assert w == 1 or n // w >= pb.cap // 2, "the width doubles only when the buckets are full"
        for c in range(2):
            rows = []
            for a in range(0, n, w):
                seg = values[a:a + w, c]
                lo = int(np.argmin(np.where(np.isfinite(seg), seg, np.inf)))
                hi = int(np.argmax(np.where(np.isfinite(seg), seg, -np.inf)))
                rows += [a + r for r in sorted({lo, hi})]
            if rows[-1] != n - 1:
                rows.append(n - 1)
            s, v = pb.column(c)
            assert _same(s, np.array(rows) * 2.0) and _same(v, values[rows, c]), (n, c)
            assert len(s) <= 2 * pb.cap + 3


def _fed_in_batches(sp, track, rng):
    at = 0
    while at < len(track):
        size = int(rng.integers(1, 700))
        sp.extend(track[at:at + size])
        at += size


def test_a_shape_path_keeps_start_extremes_and_tail_whatever_the_batching():
    """Against a reduction of the whole track at the final width: the start, then per stretch of
    ``width`` steps its points of least/greatest x and y and its last point, then the tail whole."""
    rng = np.random.default_rng(7)
    for n in (1, 10, 499, 500, 650, 5_000, 40_000):
        track = np.cumsum(rng.normal(size=(n, 2, 2)), axis=0)
        track[rng.random(n) < 0.01, 1] = np.nan  # path 1 has holes; path 0 none
        a, b = ShapePath(2, buckets=40), ShapePath(2, buckets=40)
        _fed_in_batches(a, track, rng)
        _fed_in_batches(b, track, np.random.default_rng(n))
        for j in range(2):
            assert _same(a.path(j), b.path(j)), "what is drawn depends on the rows, not the batches"
            rows = a.rows(j)
            assert _same(a.path(j), track[rows, j]), "drawn points are the path's own"
            finite = np.flatnonzero(np.isfinite(track[:, j]).all(axis=1))
            assert rows[0] == finite[0] and rows[-1] == finite[-1], "from its start to its newest finite point"
            assert np.all(np.diff(rows) > 0), "in step order, each step once"
            assert len(rows) <= a.max_points()
            seen = track[rows, j]
            assert _same(seen.min(axis=0), track[finite, j].min(axis=0))
            assert _same(seen.max(axis=0), track[finite, j].max(axis=0))
            tail = finite[finite >= a.done]
            assert set(tail) <= set(rows), "the tail is drawn whole"
            assert a.done == 0 or n - a.done >= a.tail, "at least ``tail`` newest steps stay whole"
            for lo in range(0, a.done, a.width):  # every stretch's extremes are among the drawn points
                stretch = np.arange(lo, min(lo + a.width, a.done))
                ok = stretch[np.isfinite(track[stretch, j]).all(axis=1)]
                if len(ok) == 0:
                    continue
                for axis in (0, 1):
                    v = track[ok, j, axis]
                    assert v.min() in seen[:, axis] and v.max() in seen[:, axis], (n, j, lo)


def test_a_shape_path_keeps_an_oscillation_a_stride_would_flatten():
    """A path zig-zagging between x = -1 and x = +1 every step: every-k-th-point with an even k draws a line
    at x = -1; the shape path keeps both sides in every stretch."""
    n = 100_000
    track = np.zeros((n, 1, 2))
    track[:, 0, 0] = np.where(np.arange(n) % 2, 1.0, -1.0)
    track[:, 0, 1] = np.linspace(0, 1, n)
    sp = ShapePath(1)
    _fed_in_batches(sp, track, np.random.default_rng(8))
    x = sp.path(0)[:, 0]
    assert len(x) <= MAX_PATH_POINTS
    old = x[:len(x) - TAIL_PATH_STEPS]
    assert (old == 1.0).sum() >= len(old) // 3 and (old == -1.0).sum() >= len(old) // 3
    every_kth = track[::2 * (n // (2 * MAX_PATH_POINTS) + 1), 0, 0]
    assert len(every_kth) <= MAX_PATH_POINTS and np.unique(every_kth).size == 1, "a stride sees one side only"


def test_a_diverged_shape_path_ends_at_its_last_finite_point():
    track = np.cumsum(np.ones((3_000, 1, 2)), axis=0)
    track[1_234:] = np.inf
    sp = ShapePath(1, buckets=20)
    _fed_in_batches(sp, track, np.random.default_rng(9))
    pts = sp.path(0)
    assert np.isfinite(pts).all() and _same(pts[-1], track[1_233, 0]) and _same(pts[0], track[0, 0])


def test_memory_stays_flat_as_the_run_grows():
    rng = np.random.default_rng(6)
    h = RaceHistory(8, 1)
    xy = rng.normal(size=(1_000, 8, 1, 2))
    loss, grad = rng.random((1_000, 8, 1)), rng.normal(size=(1_000, 8, 1, 2))
    lr = rng.random((1_000, 8))
    sizes = {}
    for block in range(400):
        h.add([LandscapeFrame(step=block * 1_000 + i, xy=xy[i], loss=loss[i], grad=grad[i], lr=lr[i],
                              diverged_at=np.full((8, 1), -1), evals=np.zeros(8)) for i in range(1_000)])
        if block + 1 in (200, 400):
            sizes[block + 1] = h.nbytes()
            for j in range(8):
                assert len(h.path(j)[0]) <= MAX_PATH_POINTS and len(h.curve("loss", j)[0]) <= MAX_CURVE_POINTS
    assert len(h.steps) == 400_000
    assert sizes[200] == sizes[400], sizes
    assert sizes[400] < 400_000 * 8 * 8, "far less than even one float a step per optimiser"
    assert h._table._file_rows > 390_000, "the run itself went to the temporary file"
    h.close()


def test_close_and_the_finaliser_give_the_temporary_file_back():
    rng = np.random.default_rng(7)
    h = RaceHistory(K, 1, chunk_steps=10)
    _feed(h, rng, 100)
    fh = h._table._file
    assert fh is not None and not fh.closed
    h.close()
    assert fh.closed
    h.close()  # twice is fine
    with pytest.raises(ValueError):
        h.loss.view
    assert len(h.path(0)[0]) == 100, "a closed history still draws"

    h = RaceHistory(K, 1, chunk_steps=10)
    _feed(h, rng, 100)
    fh = h._table._file
    del h
    gc.collect()
    assert fh.closed


def test_a_held_history_closes_only_when_the_last_hold_is_released():
    rng = np.random.default_rng(8)
    h = RaceHistory(K, 1, chunk_steps=10)
    _feed(h, rng, 50)
    fh = h._table._file
    first, second = h.hold(), h.hold()
    h.close()  # the panel drops it while two exports read it
    assert not fh.closed and len(h.loss.view) == 50
    first()
    first()  # a release called twice counts once
    assert not fh.closed
    second()
    assert fh.closed
