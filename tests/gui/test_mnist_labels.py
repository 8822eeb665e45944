"""The MNIST studio says what is true: the status line names the source chosen, the results table does not
promise a test score a stopped run will never get and shows the restored model's numbers together, the
Regularisers page does not draw a counter for runs without early stopping, a damaged file is an error in the
picker and a failing Train leaves the previous results on screen. Loss axes: a log switch, and a linear range
that one spiking or diverging run does not flatten. Records are fed by hand (a fake runner): no training."""
import math
import shutil
import urllib.error

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from engine.datasets import BUNDLED_IMAGES, BUNDLED_LABELS, DEBIAN_FASHION, DownloadSource
from engine.training import EvalPoint, RunSummary, TrainConfig
from engine.training_process import JobEnded, JobFailed, JobStarted, StepBlock


class FakeRunner:
    """Stands in for TrainingRunner: records the jobs it is given, hands back what a test queues."""

    def __init__(self):
        self.jobs = []
        self.queue = []
        self.running = False

    def warm_up(self, n_jobs=1):
        pass

    def alive(self):
        return True

    def start(self, jobs):
        self.jobs = list(jobs)
        self.running = True
        return 1

    def stop(self, job=None):
        self.running = False

    def poll(self):
        out, self.queue = self.queue, []
        return out

    def shutdown(self, timeout=3.0):
        pass


@pytest.fixture
def mnist(qtbot):
    from gui.mnist_panel import MnistPanel

    p = MnistPanel()
    p.runner = FakeRunner()
    qtbot.addWidget(p)
    p.resize(1400, 860)
    p.show()
    p.messages = []
    p.message.connect(p.messages.append)
    yield p
    p.runner = None
    p.shutdown()


def _trace(index, cfg=None, label=None, losses=None, n_test=0, evals=(), summary=None, ended=None, total=None):
    from gui.mnist_plots import RunTrace

    cfg = cfg or TrainConfig(epochs=2)
    losses = np.linspace(2.3, 0.3, 20) if losses is None else np.asarray(losses, dtype=float)
    n = len(losses)
    t = RunTrace(index, cfg, label or f"run {index + 1}")
    t.add(JobStarted("MNIST (bundled 5k)", 400, 100, n_test, n // 2, total or n, ("1", "4"), 4, 0.0))
    steps = np.arange(1, n + 1)
    layer_at = np.arange(1, n + 1, 4)
    width = len(layer_at)
    t.add(StepBlock(steps, steps / (n / 2), losses, np.full(n, 1e-3), np.ones(n), steps * 0.01, ("1", "4"),
                    layer_at, np.ones((width, 2)), np.ones((width, 2)), np.full((width, 2), 1e-3)))
    for e in evals:
        t.add(e)
    if summary is not None:
        t.add(summary)
    if ended is not None:
        t.add(JobEnded(ended))
    return t


def _eval(step, epoch, train, val, acc=0.8, patience=0):
    return EvalPoint(step, epoch, train, acc + 0.05, val, acc, train, step, val, patience, 1e-3, np.full(100, 0.8))


def _summary(**kw):
    base = dict(steps=20, best_val_acc=0.8, best_val_loss=0.5, best_epoch=1.0, best_step=10, final_train_loss=0.4,
                final_val_loss=0.5, test_acc=None, test_loss=None, stopped_early=False, restored_best=False,
                wall_time=1.0, final_train_acc=0.85, final_val_acc=0.8, best_eval=0)
    base.update(kw)
    return RunSummary(**base)


def _show(panel, traces):
    panel.traces = traces
    panel.plots.reset(traces)
    panel.legend.set_runs(traces)
    panel.results.reset(traces)
    panel._redraw(force=True)


def _cells(panel, row):
    return [panel.results.item(row, c).text() for c in range(panel.results.columnCount())]


# ---- 1. labels ---------------------------------------------------------------------------------------


def test_the_status_line_names_the_source_a_restored_session_chose(mnist):
    assert "5,000 real MNIST training digits" in mnist.status.text()  # the bundled default
    if not DEBIAN_FASHION.is_dir():
        pytest.skip(f"{DEBIAN_FASHION} is absent")
    mnist.set_configs([TrainConfig(dataset="fashion_debian")])  # what restoring the last session does
    assert "Fashion-MNIST" in mnist.status.text()
    assert "MNIST training digits" not in mnist.status.text()
    mnist.picker.combo.setCurrentIndex(mnist.picker.combo.findData("bundled"))
    assert "5,000 real MNIST training digits" in mnist.status.text()


def test_a_refusal_about_one_source_goes_when_another_is_chosen(mnist, tmp_path):
    def offline(url):
        raise urllib.error.URLError("offline")

    picker = mnist.picker
    picker.download_factory = lambda which: DownloadSource(which, cache_dir=tmp_path, opener=offline)
    picker.combo.setCurrentIndex(picker.combo.findData("download:mnist"))
    mnist.start()
    assert not mnist.running()
    assert mnist.status.text().startswith("Not started: dataset: MNIST is not downloaded yet")
    picker.combo.setCurrentIndex(picker.combo.findData("bundled"))
    assert "not downloaded" not in mnist.status.text()
    assert "5,000 real MNIST training digits" in mnist.status.text()


def test_a_run_you_stopped_is_not_promised_a_test_score(mnist):
    done = _trace(0, n_test=100, evals=[_eval(10, 1.0, 0.6, 0.7)], summary=_summary(test_acc=0.91, test_loss=0.3),
                  ended=False)
    stopped = _trace(1, n_test=100, evals=[_eval(10, 1.0, 0.6, 0.7)], ended=True)
    running = _trace(2, n_test=100)
    bundled = _trace(3, n_test=0, ended=True)
    _show(mnist, [done, stopped, running, bundled])
    assert _cells(mnist, 0)[8] == "91.00%"
    assert stopped.stopped_by_user and _cells(mnist, 1)[8] == "not scored (stopped)"
    assert _cells(mnist, 2)[8] == "at the end"  # still training: it will be scored
    assert _cells(mnist, 3)[8] == "no test set"


def test_an_early_stopped_row_shows_the_restored_model_throughout(mnist):
    """The last evaluation (val acc 75%) is not the model kept: the restored best one (80%, its losses)."""
    evals = [_eval(5, 0.5, 0.55, 0.50, acc=0.80), _eval(10, 1.0, 0.40, 0.60, acc=0.76, patience=1),
             _eval(15, 1.5, 0.30, 0.70, acc=0.75, patience=2)]
    s = _summary(best_val_acc=0.80, best_val_loss=0.50, best_epoch=0.5, best_loss_epoch=0.5, final_train_loss=0.55,
                 final_val_loss=0.50,
                 final_val_acc=0.80, stopped_early=True, restored_best=True, best_eval=0)
    t = _trace(0, cfg=TrainConfig(epochs=2, early_stopping=2), evals=evals, summary=s, ended=False)
    _show(mnist, [t])
    cells = _cells(mnist, 0)
    assert cells[1] == "stopped early, best restored"
    assert cells[3] == "80.0% (restored, epoch 0.50)"  # the epoch of the weights kept, said in the cell
    assert (cells[6], cells[7]) == ("0.5500", "0.5000")
    assert "epoch 0.50" in mnist.results.item(0, 3).toolTip() and "75.0%" in mnist.results.item(0, 3).toolTip()
    assert "restored" in mnist.results.item(0, 7).toolTip()


def test_the_patience_plot_draws_only_runs_that_stop_early(mnist):
    page = mnist.plots.regularisers
    off = [_trace(k, evals=[_eval(10, 1.0, 0.5, 0.6, patience=1)]) for k in range(2)]
    _show(mnist, off)
    assert page.patience.getPlotItem().titleLabel.text == "Early stopping: off in every run"
    assert all(d["patience"] is None for d in page.items)
    assert page.patience_note is not None and page.patience_note.scene() is not None
    mixed = [_trace(0, evals=[_eval(10, 1.0, 0.5, 0.6, patience=1)]),
             _trace(1, cfg=TrainConfig(epochs=2, early_stopping=3), evals=[_eval(10, 1.0, 0.5, 0.6, patience=1)])]
    _show(mnist, mixed)
    mnist.plots.setCurrentWidget(page)
    mnist._redraw(force=True)
    assert "(1 of 2 runs)" in page.patience.getPlotItem().titleLabel.text
    assert page.items[0]["patience"] is None and page.patience_note is None
    x, y = page.items[1]["patience"].getData()
    assert list(y) == [1.0]


# ---- 3. damaged files --------------------------------------------------------------------------------


def _cut_folder(tmp_path):
    folder = tmp_path / "cut"
    folder.mkdir()
    data = BUNDLED_IMAGES.read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    shutil.copy(BUNDLED_LABELS, folder / "train-labels-idx1-ubyte.gz")
    return folder


def test_a_truncated_file_is_an_error_in_the_picker_and_train_keeps_the_results(mnist, tmp_path):
    from gui.mnist_data import ERROR_COLOUR

    previous = [_trace(k, evals=[_eval(10, 1.0, 0.5, 0.6)], summary=_summary(), ended=False) for k in range(2)]
    _show(mnist, previous)
    shown = [_cells(mnist, r) for r in range(2)]
    picker = mnist.picker
    picker.combo.setCurrentIndex(picker.combo.findData("idx_folder"))
    picker.path.setText(str(_cut_folder(tmp_path)))
    picker._source_changed()
    text = picker.describe.text()
    assert text.startswith("unavailable: train-images-idx3-ubyte.gz: cut short or corrupt")
    assert ERROR_COLOUR in picker.describe.styleSheet()
    mnist.start()
    assert not mnist.running() and mnist.runner.jobs == []
    assert mnist.traces is previous and [_cells(mnist, r) for r in range(2)] == shown
    assert mnist.plots.curves.items[0]["loss"].getData()[0] is not None  # the curves are still drawn
    assert mnist.messages[-1].startswith("dataset folder: train-images-idx3-ubyte.gz: cut short or corrupt")
    assert "Run 1" not in mnist.status.text() and "train-images-idx3-ubyte.gz" in mnist.status.text()


def test_a_data_error_in_the_worker_gives_the_previous_results_back(mnist):
    """A file can still fail in full (a bad deflate block behind a sound trailer): then the runs never start,
    the previous results come back, and the message is about the data, not about 'Run 1'."""
    previous = [_trace(k, evals=[_eval(10, 1.0, 0.5, 0.6)], summary=_summary(), ended=False) for k in range(2)]
    _show(mnist, previous)
    shown = [_cells(mnist, r) for r in range(2)]
    for k in range(2, 4):
        mnist.runs.list.item(k).setCheckState(Qt.Unchecked)
    mnist.start()
    assert mnist.running() and len(mnist.runner.jobs) == 2 and mnist.traces is not previous
    problem = "train-images-idx3-ubyte.gz: corrupt gzip stream (invalid block type)"
    for k in range(2):
        mnist.runner.queue += [(k, JobFailed(problem, "", "", "IdxError")), (k, JobEnded(False))]
    mnist.runner.running = False
    mnist._tick()
    assert not mnist.running()
    assert mnist.traces is previous and [_cells(mnist, r) for r in range(2)] == shown
    assert mnist.messages == [f"dataset (bundled): {problem}"]  # once, and not "Run 1 (...)"
    assert mnist.status.text().startswith(f"Not started: dataset (bundled): {problem}.")


def test_a_run_that_fails_after_starting_is_still_that_runs_failure(mnist):
    for k in range(1, 4):
        mnist.runs.list.item(k).setCheckState(Qt.Unchecked)
    mnist.start()
    mnist.runner.queue += [(0, JobStarted("MNIST (bundled 5k)", 400, 100, 0, 7, 14, ("1", "4"), 4, 0.0)),
                           (0, JobFailed("out of memory", "", "", "RuntimeError")), (0, JobEnded(False))]
    mnist.runner.running = False
    errors = []
    mnist.error.connect(lambda text, details: errors.append(text))
    mnist._tick()
    assert len(mnist.traces) == 1 and mnist.traces[0].failed is not None
    assert errors and errors[0].startswith("Run 1 (")


# ---- 2. loss axes ------------------------------------------------------------------------------------


def _spiky_runs():
    n = 100
    calm = np.linspace(2.3, 0.1, n)
    spike = np.linspace(2.3, 1.5, n)
    spike[2:9] = [20.0, 60.0, 85.0, 70.0, 40.0, 20.0, 8.0]
    diverged = np.linspace(2.3, 1.0, n)
    diverged[40:50] = np.geomspace(10.0, 6e7, 10)
    diverged[50:] = np.nan
    zero = calm.copy()
    zero[60] = 0.0  # a loss of exactly 0 (float underflow): drawn on a linear axis, left out on a log one
    traces = [_trace(0, losses=calm), _trace(1, losses=spike), _trace(2, losses=diverged), _trace(3, losses=zero)]
    traces[2].add(RunSummary(50, 0.1, np.inf, 0.0, -1, np.nan, np.nan, None, None, False, False, 0.1,
                             diverged_at=51))
    traces[2].add(JobEnded(False))
    return traces


def _y_range(plot):
    return plot.getPlotItem().getViewBox().viewRange()[1]


def test_one_spiking_or_diverging_run_does_not_flatten_the_others(mnist):
    curves = mnist.plots.curves
    assert curves.fit_check.isChecked()  # the default
    _show(mnist, _spiky_runs())
    lo, hi = _y_range(curves.step_loss)
    assert 2.3 <= hi < 8.0 and lo <= 0.1  # the calm runs fill the plot
    assert "mini-batch loss up to 6e+07" in curves.clip_note.text()
    curves.fit_check.setChecked(False)  # every value: the axis goes to the divergence
    lo, hi = _y_range(curves.step_loss)
    assert hi >= 6e7 and curves.clip_note.text() == ""


def test_the_healthy_run_fills_the_plot_even_when_most_runs_blow_up(mnist):
    n = 100
    calm = np.linspace(2.3, 0.1, n)
    huge, huger = np.linspace(2.3, 2.5e13, n), np.linspace(2.3, 6e18, n)  # finite, but far beyond any lesson
    _show(mnist, [_trace(0, losses=calm), _trace(1, losses=huge), _trace(2, losses=huger)])
    lo, hi = _y_range(mnist.plots.curves.step_loss)
    assert 2.3 <= hi < 8.0 and lo <= 0.1
    assert "up to 6e+18" in mnist.plots.curves.clip_note.text()


def test_the_log_switch_shows_every_run_masks_what_is_not_positive_and_keeps_the_divergence(mnist):
    curves = mnist.plots.curves
    traces = _spiky_runs()
    _show(mnist, traces)
    curves.log_check.setChecked(True)
    assert curves.loss_log and curves.step_loss.getAxis("left").logMode
    lo, hi = _y_range(curves.step_loss)  # log10 units: from below 0.1 to above 6e7, all finite
    assert math.isfinite(lo) and math.isfinite(hi) and lo <= -1.0 and hi >= math.log10(6e7)
    assert curves.clip_note.text() == ""
    x, y = curves.items[3]["loss"].getData()  # the zero is a gap, the rest is log10 of the losses
    assert np.isnan(y[list(x).index(61.0)]) and np.isclose(y[0], math.log10(2.3))
    x, y = curves.items[2]["loss"].getData()  # the diverged run: its finite points drawn, its x at the last one
    assert np.isfinite(y).sum() == 50
    mark_x, mark_y = curves.items[2]["diverged"].getData()
    assert list(mark_x) == [51.0] and curves.items[2]["diverged"].isVisible()
    evx = curves.items[0]["train"]  # evaluation curves follow the plot's log mode
    assert evx.opts["logMode"][1]
    curves.log_check.setChecked(False)
    x, y = curves.items[0]["loss"].getData()
    assert np.isclose(y[0], 2.3)
    assert not curves.step_loss.getAxis("left").logMode


def test_label_smoothing_floors_move_with_the_log_switch(mnist):
    from engine.training import smoothing_floor

    t = _trace(0, cfg=TrainConfig(epochs=2, label_smoothing=0.1))
    _show(mnist, [t])
    curves = mnist.plots.curves
    floor = smoothing_floor(0.1)
    assert all(np.isclose(line.value(), floor) for line, _ in curves.floor_lines) and curves.floor_lines
    curves.log_check.setChecked(True)
    assert all(np.isclose(line.value(), math.log10(floor)) for line, _ in curves.floor_lines)


# ---- 4. cosmetics ------------------------------------------------------------------------------------


def _fresh_trace(k):
    from gui.mnist_plots import RunTrace

    return RunTrace(k, TrainConfig(epochs=5), f"fresh {k}")


def test_new_runs_start_on_empty_plots_with_their_own_ranges(mnist):
    curves = mnist.plots.curves
    curves.fit_check.setChecked(False)
    _show(mnist, _spiky_runs())  # y up to 6e7, x to 100 steps
    assert _y_range(curves.step_loss)[1] > 1e7
    fresh = [_fresh_trace(k) for k in range(2)]
    mnist.plots.reset(fresh, planned_steps=35)
    lo, hi = _y_range(curves.step_loss)
    assert (lo, hi) == pytest.approx((0.0, 2.5))
    x0, x1 = curves.step_loss.getPlotItem().getViewBox().viewRange()[0]
    assert x0 < 0 < 35 < x1 < 40
    x0, x1 = curves.eval_loss.getPlotItem().getViewBox().viewRange()[0]
    assert x0 < 0 < 5 < x1 < 5.5  # the new runs' 5 epochs
    for plot in mnist.plots.regularisers.plots() + mnist.plots.layers.plots():
        assert plot.getPlotItem().getViewBox().viewRange()[0][1] < 10, plot  # not the 100 steps before


def test_overfitting_arrows_are_large_and_in_the_runs_colour(mnist):
    from gui.mnist_plots import OVERFIT_ARROW
    from gui.mnist_runs import run_colour

    evals = [_eval(2 * k, k / 5, 1.0 - 0.1 * k, 0.5 + (0.05 * (k - 3) if k > 3 else 0)) for k in range(1, 10)]
    t = _trace(2, evals=evals)
    _show(mnist, [t])
    item = mnist.plots.curves.items[0]["overfit"]
    x, _ = item.getData()
    assert item.isVisible() and len(x) == 1  # one arrow where the stretch of overfitting begins
    opts = item.opts
    assert opts["symbol"] is OVERFIT_ARROW and opts["symbolSize"] >= 24
    assert QColor(opts["symbolBrush"].color()).name() == QColor(run_colour(2)).name()
    assert OVERFIT_ARROW.boundingRect().width() >= 0.4  # pyqtgraph's arrow_up is a quarter of the size wide
    assert OVERFIT_ARROW.boundingRect().bottom() < 0  # above its point, the marker there stays visible


def _contrast(a, b):
    def lum(c):
        c = QColor(c)
        ch = [v / 255 for v in (c.red(), c.green(), c.blue())]
        ch = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]

    hi, lo = sorted((lum(a), lum(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_per_layer_colours_show_on_white_and_on_the_dark_theme(mnist):
    from gui.mnist_plots import LAYER_COLOURS

    for colour in LAYER_COLOURS:
        assert _contrast(colour, "#ffffff") >= 2.0, colour
        assert _contrast(colour, "#1e1e1e") >= 2.0, colour
    cfg = TrainConfig(epochs=2, model_params={"depth": 4})
    t = _trace(0, cfg=cfg)
    n = len(t.layer_step)
    t.layer_grad = None  # five layers' statistics instead of two
    from gui.series import Growing
    t.layer_names = tuple(f"layer {k}" for k in range(5))
    t.layer_grad, t.layer_weight, t.update_ratio = (Growing((5,)) for _ in range(3))
    for g in (t.layer_grad, t.layer_weight, t.update_ratio):
        g.extend(np.ones((n, 5)))
    _show(mnist, [t])
    mnist.plots.setCurrentWidget(mnist.plots.layers)
    mnist._redraw(force=True)
    used = [item.opts["pen"].color().name() for item in mnist.plots.layers.curves["grad"]]
    assert len(used) == 5 and set(used) <= {QColor(c).name() for c in LAYER_COLOURS}
    assert len(set(used)) == 5


def test_results_columns_grow_when_a_longer_text_arrives(mnist):
    """Sized while the texts were short ("training", "at the end"), a column grows when a longer one comes
    while other runs still train ("stopped by you at step 20", "not scored (stopped)")."""
    table = mnist.results
    t, other = _trace(0, n_test=100), _trace(1, n_test=100)
    table.reset([t, other])
    table.update_rows([t, other], 100.0, 1e-6)
    assert table.item(0, 1).text() == "training"
    t.add(JobEnded(True))
    table.update_rows([t, other], 100.0, 1e-6)
    for col, text in ((1, "stopped by you at step 20"), (8, "not scored (stopped)")):
        assert table.item(0, col).text() == text
        assert table.columnWidth(col) >= table.fontMetrics().horizontalAdvance(text), (col, text)


def test_blown_up_losses_read_in_powers_of_ten_and_ordinary_ones_in_four_decimals():
    from gui.mnist_results import _loss

    assert _loss(6120638184201125888.0) == "6.121e+18"
    assert _loss(0.123456) == "0.1235" and _loss(9999.5) == "9999.5000"
    assert _loss(float("nan")) == "not finite" and _loss(None) == "-"
