"""Metrics exports: exact after the history spilled to disk, byte-compatible with the whole-run layout,
cancellable without leaving a file, and run off the GUI thread with errors reported."""
from __future__ import annotations

import csv
import json
import math
import threading
import warnings

import numpy as np
import pytest

from engine.landscape import LandscapeFrame
from engine.render import _jsonable, write_json
from engine.session import dumps
from gui.export import export_landscape_metrics, export_training_metrics
from gui.export_worker import ExportCancelled
from gui.race_history import RaceHistory

K = 3
LABELS = ["plain", "with, comma", 'a "quoted" é 100%']


def _frames(steps: int, k: int = K, n: int = 2, seed: int = 0) -> list[LandscapeFrame]:
    """Frames with full-precision floats over the whole exponent range, NaN and infinities."""
    rng = np.random.default_rng(seed)
    out = []
    for t in range(steps):
        loss = rng.random((k, n)) * 10.0 ** rng.integers(-300, 300, size=(k, n))
        xy = rng.normal(size=(k, n, 2))
        if t % 17 == 3:
            loss[0] = np.nan  # a diverged optimiser: its mean is NaN
        if t % 23 == 5:
            loss[1, 0] = np.inf
            xy[2, 0, 1] = -np.inf
        if t % 29 == 7:
            xy[1, 0, 0] = np.nan
        out.append(LandscapeFrame(step=t, xy=xy, loss=loss, grad=rng.normal(size=(k, n, 2)),
                                  lr=rng.random(k) / (t + 1), diverged_at=np.full((k, n), -1),
                                  evals=np.full(k, t)))
    return out


def _expected(frames: list[LandscapeFrame]) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"steps": np.array([f.step for f in frames]),
                "x": np.array([f.xy[:, 0, 0] for f in frames]), "y": np.array([f.xy[:, 0, 1] for f in frames]),
                "loss": np.array([np.nanmean(f.loss, axis=1) for f in frames]),
                "grad_norm": np.array([np.nanmean(np.linalg.norm(f.grad, axis=-1), axis=1) for f in frames]),
                "lr": np.array([f.lr for f in frames])}


class _InPieces:
    """A RaceHistory read back in small chunks, so an export crosses many chunk boundaries."""

    def __init__(self, history: RaceHistory, steps: int):
        self.h, self.k, self.steps, self.size = history, history.k, history.steps, steps

    def chunks(self):
        return self.h.chunks(self.size)


@pytest.fixture
def spilled():
    frames = _frames(300)
    h = RaceHistory(K, 2, chunk_steps=16)  # 300 steps: 18 chunks spilled to the temporary file, 12 in RAM
    for a in range(0, len(frames), 7):
        h.add(frames[a:a + 7])
    yield h, frames
    h.close()


def _same(a: float, b: float) -> bool:
    """Exactly equal, NaN equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("piece", [50, 65536])
def test_csv_after_a_spill_reads_back_exactly(spilled, tmp_path, piece):
    h, frames = spilled
    seen = []
    path = export_landscape_metrics(_InPieces(h, piece), LABELS, tmp_path / "m.csv", progress=seen.append)
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "optimizer", "x", "y", "loss", "grad_norm", "lr"]
    exp = _expected(frames)
    body = rows[1:]
    assert len(body) == len(frames) * K
    for r, row in enumerate(body):
        t, i = divmod(r, K)
        assert int(row[0]) == exp["steps"][t] and row[1] == LABELS[i]
        for col, name in zip(row[2:], ("x", "y", "loss", "grad_norm", "lr")):
            assert _same(float(col), float(exp[name][t, i])), (r, name, col)
    text = path.read_text(encoding="utf-8")
    assert "inf" in text and "-inf" in text and ",nan," in text  # non-finite spelled as fmt() spells them
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_json_after_a_spill_reads_back_exactly_and_keeps_the_whole_run_layout(spilled, tmp_path):
    h, frames = spilled
    path = export_landscape_metrics(_InPieces(h, 50), LABELS, tmp_path / "m.json")
    exp = _expected(frames)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["steps"] == exp["steps"].tolist()
    assert [o["label"] for o in data["optimizers"]] == LABELS
    for i, o in enumerate(data["optimizers"]):
        for name in ("loss", "grad_norm", "lr", "x", "y"):
            want = [v if math.isfinite(v) else None for v in exp[name][:, i].tolist()]
            assert o[name] == want, name  # floats parse back to the same float64; NaN and inf as null
    # Byte for byte what the whole-run writer (engine.session.dumps) lays out for the same data.
    whole = {"steps": exp["steps"].tolist(), "optimizers": [
        {"label": label, **{n: exp[n][:, i] for n in ("loss", "grad_norm", "lr", "x", "y")}}
        for i, label in enumerate(LABELS)]}
    assert path.read_text(encoding="utf-8") == dumps(_jsonable(whole)) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


@pytest.mark.parametrize("steps", [0, 1, 33, 34])
def test_short_runs_keep_the_one_line_lists(tmp_path, steps):
    h = RaceHistory(K, 1, chunk_steps=8)
    frames = _frames(steps, n=1)
    h.add(frames)
    exp = _expected(frames)
    whole = {"steps": exp["steps"].tolist() if steps else [], "optimizers": [
        {"label": label, **{n: (exp[n][:, i] if steps else np.zeros(0)) for n in ("loss", "grad_norm", "lr", "x", "y")}}
        for i, label in enumerate(LABELS)]}
    text = export_landscape_metrics(h, LABELS, tmp_path / "m.json").read_text(encoding="utf-8")
    assert text == dumps(_jsonable(whole)) + "\n"
    h.close()


@pytest.mark.parametrize("value", [
    {"a": np.arange(40), "b": np.linspace(0, 1, 50), "c": np.array([1.0, np.nan, np.inf] * 20)},
    {"short": np.array([0.1, 0.2]), "flags": np.array([True, False] * 20), "f32": np.float32([0.1] * 40)},
    {"runs": [{"x": np.arange(50.0)}, {"y": [1, 2]}], "pair": [np.arange(40), np.arange(40)], "e": {}},
    [np.arange(3), np.arange(40)], {"empty": np.zeros(0), "2d": np.ones((40, 2)), "s": "é", "n": None},
])
def test_write_json_matches_dumps_byte_for_byte(tmp_path, value):
    text = write_json(tmp_path / "v.json", value).read_text(encoding="utf-8")
    assert text == dumps(_jsonable(value)) + "\n"


@pytest.mark.parametrize("suffix", ["csv", "json"])
def test_a_cancelled_export_leaves_no_file(spilled, tmp_path, suffix):
    h, _ = spilled
    (tmp_path / f"m.{suffix}").write_text("the previous export")

    def cancel_at_once(fraction):
        raise ExportCancelled

    with pytest.raises(ExportCancelled):
        export_landscape_metrics(_InPieces(h, 50), LABELS, tmp_path / f"m.{suffix}", progress=cancel_at_once)
    # The earlier file is untouched, and neither a .part nor a spooled column file is left.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m.{suffix}"]
    assert (tmp_path / f"m.{suffix}").read_text() == "the previous export"


def test_training_csv_is_exact(tmp_path):
    from types import SimpleNamespace
    rng = np.random.default_rng(3)
    loss = rng.random(100) * 10.0 ** rng.integers(-20, 20, 100)
    loss[5] = np.nan
    t = SimpleNamespace(step=np.arange(100.0), loss=loss, lr=rng.random(100), grad=rng.random(100),
                        eval_step=np.array([50.0, 100.0]), eval_epoch=np.array([0.5, 1.0]),
                        train_loss=np.array([1.0, np.inf]),
                        val_loss=np.array([0.3, 0.2]), train_acc=np.array([0.1, 0.2]), val_acc=np.array([0.3, 0.4]))
    rows = list(csv.reader(export_training_metrics(t, tmp_path / "t.csv", "run, 1 (50%)").open(newline="")))
    steps = [r for r in rows[1:] if r[0] == "step"]
    assert [int(r[2]) for r in steps] == list(range(100)) and {r[1] for r in steps} == {"run, 1 (50%)"}
    assert all(_same(float(r[4]), v) for r, v in zip(steps, loss.tolist()))
    assert rows[-1] == ["eval", "run, 1 (50%)", "100", "1.0", "", "", "", "inf", "0.2", "0.2", "0.4"]


# ---- through the window ---------------------------------------------------------------------------------

def _race(window, qtbot, steps: int = 5):
    panel = window.landscape
    for _ in range(steps):
        panel.single_step()
    assert len(panel.history.steps) == steps
    return panel


def _save_as(monkeypatch, path):
    from PySide6.QtWidgets import QFileDialog
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(path), ""))


def _idle(window) -> bool:
    export = window.sessions._export
    return export is None or not export.is_running()


def test_the_window_exports_through_the_worker(window, qtbot, monkeypatch, tmp_path):
    tmp_path = tmp_path / "out"  # the window keeps its settings.ini beside
    tmp_path.mkdir()
    panel = _race(window, qtbot)
    path = tmp_path / "m.csv"
    _save_as(monkeypatch, path)
    window.sessions.export_metrics()
    assert window.sessions._export.thread is not None
    qtbot.waitUntil(lambda: _idle(window), timeout=30_000)
    rows = path.read_text().splitlines()
    assert len(rows) == 1 + 5 * len(panel.run_configs)
    assert window.statusBar().currentMessage() == f"Exported {path}"
    assert not (tmp_path / "m.csv.part").exists()
    panel.single_step()  # the history was left open and the race goes on
    assert len(panel.history.steps) == 6


def _gated(monkeypatch, reached: threading.Event):
    """export_landscape_metrics that, at its first chunk, waits (on the worker) until a cancel is asked."""
    import gui.export as export
    real = export.export_landscape_metrics

    def slow(history, labels, path, progress=None):
        def gate(fraction):
            reached.set()
            progress.__self__.cancel_requested.wait(30)
            progress(fraction)
        return real(history, labels, path, gate)

    monkeypatch.setattr(export, "export_landscape_metrics", slow)


def test_cancel_in_the_window_leaves_no_file(window, qtbot, monkeypatch, tmp_path):
    tmp_path = tmp_path / "out"  # the window keeps its settings.ini beside
    tmp_path.mkdir()
    panel = _race(window, qtbot)
    path = tmp_path / "m.json"
    _save_as(monkeypatch, path)
    reached = threading.Event()
    _gated(monkeypatch, reached)
    window.sessions.export_metrics()
    qtbot.waitUntil(reached.is_set, timeout=30_000)
    history = panel.history
    panel.reset()  # a reset mid-export: the history's close waits for the export
    assert not history._table.closed
    from PySide6.QtWidgets import QPushButton
    window.sessions._export.dialog.findChild(QPushButton).click()  # the dialog's Cancel button
    qtbot.waitUntil(lambda: _idle(window), timeout=30_000)
    assert list(tmp_path.iterdir()) == []
    assert "cancelled" in window.statusBar().currentMessage()
    assert history._table.closed  # the deferred close happened when the export ended


def test_closing_the_window_mid_export_cancels_it(window, qtbot, monkeypatch, tmp_path):
    tmp_path = tmp_path / "out"  # the window keeps its settings.ini beside
    tmp_path.mkdir()
    _race(window, qtbot)
    _save_as(monkeypatch, tmp_path / "m.csv")
    reached = threading.Event()
    _gated(monkeypatch, reached)
    window.sessions.export_metrics()
    qtbot.waitUntil(reached.is_set, timeout=30_000)
    export = window.sessions._export
    window.close()
    assert not export.thread.isRunning() and not export.is_running()
    assert list(tmp_path.iterdir()) == []


def test_a_failing_export_shows_an_error_and_the_app_goes_on(window, qtbot, monkeypatch, tmp_path):
    tmp_path = tmp_path / "out"  # the window keeps its settings.ini beside
    tmp_path.mkdir()
    panel = _race(window, qtbot)
    (tmp_path / "not-a-folder").write_text("")
    _save_as(monkeypatch, tmp_path / "not-a-folder" / "m.csv")
    window.sessions.export_metrics()
    qtbot.waitUntil(lambda: getattr(window, "last_error_box", None) is not None, timeout=30_000)
    assert "Could not export metrics" in window.last_error_box.text()
    assert "is a file, not a folder" in window.last_error_box.text()
    window.last_error_box.close()
    assert window.sessions._export is None, "a refused destination starts no export"
    _save_as(monkeypatch, tmp_path / "m.csv")
    window.sessions.export_metrics()
    qtbot.waitUntil(lambda: _idle(window) and (tmp_path / "m.csv").exists(), timeout=30_000)
    panel.single_step()
    assert len(panel.history.steps) == 6


def test_mnist_metrics_export_through_the_worker(window, qtbot, monkeypatch, tmp_path):
    tmp_path = tmp_path / "out"  # the window keeps its settings.ini beside
    tmp_path.mkdir()
    from gui.mnist_plots import RunTrace
    panel = window.mnist
    window.tabs.setCurrentWidget(panel)
    trace = RunTrace(0, panel.configs()[0], "run a")
    for j in range(50):
        for name, v in (("step", j), ("loss", 1.0 / (j + 1)), ("lr", 0.1), ("grad", 0.5)):
            getattr(trace, name).append(v)
    monkeypatch.setattr(panel, "traces", [trace])
    _save_as(monkeypatch, tmp_path / "t.json")
    window.sessions.export_metrics()
    qtbot.waitUntil(lambda: _idle(window), timeout=30_000)
    data = json.loads((tmp_path / "t-run1.json").read_text())
    assert data["run"] == "run a" and data["steps"]["loss"] == [1.0 / (j + 1) for j in range(50)]
    assert "Exported 1 runs" in window.statusBar().currentMessage()


def test_a_cancelled_mnist_export_leaves_none_of_its_files(tmp_path):
    from types import SimpleNamespace

    from gui.session_menu import _write_runs
    runs = [SimpleNamespace(index=i, label=f"r{i}", step=np.arange(10.0), loss=np.ones(10), lr=np.ones(10),
                            grad=np.ones(10), eval_step=np.zeros(0), eval_epoch=np.zeros(0), train_loss=np.zeros(0),
                            val_loss=np.zeros(0),
                            train_acc=np.zeros(0), val_acc=np.zeros(0)) for i in range(2)]

    def cancel_in_the_second(fraction):
        if fraction > 0.5:
            raise ExportCancelled

    with pytest.raises(ExportCancelled):
        _write_runs(runs, tmp_path / "t.csv", cancel_in_the_second)
    assert list(tmp_path.iterdir()) == []
    assert [p.name for p in _write_runs(runs, tmp_path / "t.csv")] == ["t-run1.csv", "t-run2.csv"]
