"""The MNIST studio: four runs trained side by side in the worker process, curves and the results table
filled, stop, bad input refused with the field named, the dataset picker (folder, download offline and
online, cancel), the learning-rate range test, and nothing left running."""
import hashlib
import io
import multiprocessing as mp
import shutil
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from engine.datasets import BUNDLED_IMAGES, BUNDLED_LABELS, DownloadSource, Mirror, RemoteFile
from engine.lr_range import LRRangeConfig
from engine.training import EvalPoint, RunSummary, TrainConfig
from engine.training_process import JobEnded, JobStarted, StepBlock

T10K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture
def panel(mnist_panel):
    return mnist_panel


def finished(p):
    return bool(p.traces) and all(t.finished for t in p.traces) and not p.running()


def test_four_runs_train_side_by_side_and_fill_the_curves_and_the_results_table(panel, qtbot):
    panel.picker.train_size.setValue(400)
    panel.epochs.setValue(2)
    assert panel.runs.count() == 4
    panel.start()
    assert panel.run_button.text() == "Stop"
    qtbot.waitUntil(lambda: finished(panel), timeout=90_000)
    assert len(panel.traces) == 4 and panel.run_button.text() == "Train"
    labels = [t.label for t in panel.traces]
    assert len(set(labels)) == 4
    for t in panel.traces:
        assert t.summary is not None and t.state() == "done"
        assert len(t.step) == 2 * 7 and len(t.val_acc) == 2  # 400 digits in batches of 64: 7 steps an epoch
    curves = panel.plots.curves
    for d in curves.items:
        x, y = d["loss"].getData()
        assert len(x) == 14 and np.isfinite(y).all()
        assert len(d["val"].getData()[0]) == 2
    table = panel.results
    assert table.rowCount() == 4
    for r in range(4):
        assert table.item(r, 1).text() == "done"
        assert table.item(r, 4).text().endswith("%")
        assert table.item(r, 8).text() == "no test set"
        assert table.item(r, 11).text().endswith(" s")
    assert "best val acc" in panel.status.text()
    assert panel.legend.row.count() == 4 * 3 + 1  # icon, name and stop button per run, then the stretch
    assert not any(b.isEnabled() for b in panel.legend.stops)  # nothing left to stop
    # The other pages draw what they missed as soon as they are shown.
    panel.plots.setCurrentIndex(1)
    items = panel.plots.layers.curves["grad"]
    assert items and len(items[0].getData()[0]) > 0
    panel.plots.setCurrentIndex(2)
    conf = panel.plots.regularisers.items[0]["conf"].getData()
    assert conf[1] is not None and np.isclose(np.sum(conf[1]), 1.0)


def test_stop_ends_every_run_and_the_table_says_so(panel, qtbot):
    panel.picker.train_size.setValue(400)
    panel.epochs.setValue(500)
    panel.start()
    qtbot.waitUntil(lambda: panel.traces and all(len(t.step) > 5 for t in panel.traces), timeout=90_000)
    panel.stop()
    assert panel.run_button.text() == "Train"
    qtbot.waitUntil(lambda: all(t.finished for t in panel.traces), timeout=30_000)
    panel._redraw(force=True)
    for r, t in enumerate(panel.traces):
        assert t.summary is None and t.stopped_by_user
        assert t.state() == f"stopped by you at step {len(t.step)}"
        assert panel.results.item(r, 1).text() == t.state()
        assert not panel.legend.stops[r].isEnabled()


@pytest.mark.parametrize("setup, expected", [
    (lambda p: p.runs.editors[0].dropout.setText("abc"), "run 1 dropout"),
    (lambda p: p.runs.editors[1].dropout.setText("0.1, 0.2"), "run 2 dropout"),  # one dropout layer only
    (lambda p: p.runs.editors[0].form.widgets["lr"].setText("-1"), "run 1 optimizer SGD.lr"),
    (lambda p: p.picker.train_size.setValue(4500), "training digits"),
    (lambda p: p.picker.combo.setCurrentIndex(p.picker.combo.findData("idx_folder")), "dataset folder"),
])
def test_bad_input_is_refused_with_the_field_named_and_nothing_starts(panel, setup, expected):
    setup(panel)
    panel.start()
    assert not panel.running() and panel.traces == []
    assert any(m.startswith(expected) for m in panel.messages), panel.messages
    assert expected in panel.status.text()


def test_a_folder_of_idx_files_with_a_test_set_gets_test_accuracy(panel, qtbot, tmp_path):
    if not T10K.exists():
        pytest.skip(f"{T10K} is absent")
    folder = tmp_path / "MNIST" / "raw"
    folder.mkdir(parents=True)
    shutil.copy(BUNDLED_IMAGES, folder / "train-images-idx3-ubyte.gz")
    shutil.copy(BUNDLED_LABELS, folder / "train-labels-idx1-ubyte.gz")
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(T10K / name, folder / name)
    picker = panel.picker
    picker.combo.setCurrentIndex(picker.combo.findData("idx_folder"))
    picker.path.setText(str(tmp_path))  # the torchvision layout: <root>/MNIST/raw
    picker._source_changed()
    assert "5,000 train + 10,000 test" in picker.describe.text()
    picker.train_size.setValue(400)
    panel.epochs.setValue(1)
    for row in (1, 2, 3):
        panel.runs.list.item(row).setCheckState(panel.runs.list.item(row).checkState().__class__.Unchecked)
    panel.start()
    qtbot.waitUntil(lambda: finished(panel), timeout=90_000)
    assert len(panel.traces) == 1
    s = panel.traces[0].summary
    assert s is not None and 0.3 < s.test_acc <= 1.0
    assert panel.results.item(0, 8).text().endswith("%")
    assert "10,000 test digits" in panel.status.text()


def _fake_mirror(tmp_path):
    files = []
    for src, name in ((BUNDLED_IMAGES, "train-images-idx3-ubyte.gz"), (BUNDLED_LABELS, "train-labels-idx1-ubyte.gz")):
        data = src.read_bytes()
        files.append(RemoteFile(name, hashlib.md5(data).hexdigest(), len(data)))
    return Mirror("fake-mnist", "Fake MNIST", "mnist", ("http://mirror.invalid/",), tuple(files))


class _Response(io.BytesIO):
    headers: dict = {}


def test_download_offline_says_so_and_leaves_nothing(panel, qtbot, tmp_path):
    def offline(url):
        raise urllib.error.URLError("Temporary failure in name resolution")

    picker = panel.picker
    picker.download_factory = lambda which: DownloadSource(which, cache_dir=tmp_path, opener=offline)
    picker.combo.setCurrentIndex(picker.combo.findData("download:mnist"))
    assert "download" in picker.describe.text()
    panel.start()  # not downloaded yet: refused with a message, nothing runs
    assert not panel.running() and any("not downloaded yet" in m for m in panel.messages)
    picker.start_download()
    qtbot.waitUntil(lambda: not picker.downloading() and picker.download is None, timeout=30_000)
    assert "offline" in picker.describe.text()
    assert any("offline" in m for m in panel.messages)
    assert not any(tmp_path.rglob("*.part"))


def test_download_shows_progress_verifies_checksums_and_can_be_cancelled(panel, qtbot, tmp_path):
    mirror = _fake_mirror(tmp_path)
    gate = threading.Event()
    served = {"n": 0}

    def opener(url):
        name = url.rsplit("/", 1)[1]
        src = BUNDLED_IMAGES if "images" in name else BUNDLED_LABELS
        served["n"] += 1
        if not gate.is_set():
            class Slow(_Response):
                def read(self, n=-1):
                    gate.wait(30)  # released by the test after it asked to cancel
                    return super().read(n)
            return Slow(src.read_bytes())
        return _Response(src.read_bytes())

    picker = panel.picker
    picker.download_factory = lambda which: DownloadSource(mirror, cache_dir=tmp_path, opener=opener)
    picker.combo.setCurrentIndex(picker.combo.findData("download:fashion"))
    picker.start_download()
    assert picker.downloading() and picker.cancel_button.isVisibleTo(picker)
    picker.cancel_download()
    gate.set()
    qtbot.waitUntil(lambda: picker.download is None, timeout=30_000)
    assert "cancelled" in picker.describe.text()
    assert not any(tmp_path.rglob("*.part")) and not any((tmp_path / "fake-mnist").glob("*.gz"))
    picker.start_download()
    qtbot.waitUntil(lambda: picker.download is None, timeout=30_000)
    assert picker.bar.value() == 1000
    assert "is ready" in picker.describe.text() and "5,000 train" in picker.describe.text()
    assert sorted(p.name for p in (tmp_path / "fake-mnist").iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]


def test_the_range_test_suggests_a_rate_and_sets_it(panel, qtbot):
    panel.picker.train_size.setValue(400)
    page = panel.range_page
    panel.plots.setCurrentWidget(page)
    panel.start_range_test(3, LRRangeConfig(1e-5, 10.0, 80))
    assert panel.running()
    qtbot.waitUntil(lambda: page.outcome is not None and not panel.running(), timeout=60_000)
    r = page.outcome
    assert 1e-5 < r.suggested_lr < 10 and page.use_button.isEnabled()
    assert page.suggest_line.scene() is not None
    assert len(page.smooth.getData()[0]) == len(r.lrs)
    page.use_button.click()
    lr = panel.runs.editors[3].form.values()["lr"]
    assert lr == pytest.approx(float(f"{r.suggested_lr:.3g}"))
    assert any("learning rate set" in m for m in panel.messages)


def test_runs_round_trip_through_their_configs_and_lessons_fill_the_list(panel):
    panel.apply_lesson("weight_decay")
    cfgs = panel.configs()
    assert [c.optimizer.name for c in cfgs] == ["adam", "adam_l2", "adamw", "adamw"]
    assert all(c.seed == cfgs[0].seed and c.model_params == cfgs[0].model_params for c in cfgs)
    panel.apply_lesson("dropout")
    assert [c.dropout_per_layer for c in panel.configs()] == [(), (), (), (0.1, 0.5)]
    panel.set_configs(cfgs)
    assert panel.configs() == cfgs
    one = panel.config()
    assert TrainConfig.from_dict(one.to_dict()) == one


def test_a_diverged_run_and_flagged_gradients_are_drawn_not_crashed(panel, qtbot):
    """Fed by hand (no training): NaN losses are gaps plus an x; thresholds flag layers in the table."""
    from engine.training import TrainConfig as TC
    from gui.mnist_plots import RunTrace

    cfg = TC(epochs=1)
    traces = [RunTrace(0, cfg, "diverges"), RunTrace(1, cfg, "steady")]
    steps = np.arange(1, 11)
    loss = np.linspace(2.3, 1.0, 10)
    bad = loss.copy()
    bad[-1] = np.nan
    for t, y, g in ((traces[0], bad, np.full((3, 2), 500.0)), (traces[1], loss, np.full((3, 2), 1.0))):
        t.add(JobStarted("digits", 100, 50, 0, 10, 10, ("1", "4"), 4, 0.0))
        t.add(StepBlock(steps, steps / 10, y, np.full(10, 0.1), np.where(np.isfinite(y), 1.0, np.nan), steps * 0.01,
                        ("1", "4"), np.array([1, 5, 9]), g, np.ones((3, 2)), np.full((3, 2), 1e-3)))
    traces[0].add(RunSummary(10, 0.0, np.inf, 0.0, -1, np.nan, np.nan, None, None, False, False, 0.1, diverged_at=10))
    traces[0].add(JobEnded(False))
    traces[1].add(EvalPoint(10, 1.0, 1.0, 0.7, 1.1, 0.65, 1.2, 10, 1.1, 0, 0.1, np.full(50, 0.8)))
    panel.traces = traces
    panel.plots.reset(traces)
    panel.results.reset(traces)
    panel._redraw(force=True)
    d = panel.plots.curves.items[0]
    x, y = d["diverged"].getData()
    assert list(x) == [10.0] and np.isfinite(y).all()
    assert panel.results.item(0, 1).text() == "diverged at step 10"
    assert panel.results.item(0, 10).text() == "exploding" and panel.results.item(1, 10).text() == "ok"
    gx, _ = d["grad_flag"].getData()
    assert list(gx) == [1.0, 5.0, 9.0]
    panel.diagnostics.widgets["explode"].setText("1000")
    panel.diagnostics.widgets["explode"].editingFinished.emit()
    assert panel.results.item(0, 10).text() == "ok"


def test_shutdown_mid_run_stops_and_joins_the_training_process(qtbot):
    from gui.mnist_panel import MnistPanel

    p = MnistPanel()
    qtbot.addWidget(p)
    p.show()  # starts the worker
    assert p.runner is not None and p.runner.alive()
    p.picker.train_size.setValue(400)
    p.epochs.setValue(500)
    p.start()
    qtbot.waitUntil(lambda: p.traces and len(p.traces[0].step) > 0, timeout=90_000)
    process = p.runner._workers[0].process
    p.shutdown()
    assert p.runner is None
    assert process not in mp.active_children()


def test_the_mnist_presets_load_into_the_panel(panel):
    """Sessions and presets carry TrainConfig lists: set_configs takes them, configs() gives them back
    (with every default filled in, as the forms show them)."""
    import json

    from engine.optimizers import OPTIMIZERS
    from engine.registry import resolve_params
    from engine.schedules import SCHEDULES

    def resolved(cfg):
        o, sch = cfg.optimizer, cfg.optimizer.schedule
        return (o.name, OPTIMIZERS.get(o.name).resolve(o.params), sch.name,
                resolve_params(SCHEDULES.get(sch.name).params, sch.params, "schedule"), sch.warmup_steps,
                sch.warmup_start_factor)

    folder = Path(__file__).resolve().parents[2] / "resources" / "presets"
    files = sorted(folder.glob("mnist_*.json"))
    if not files:
        pytest.skip("no MNIST presets")
    for path in files:
        runs = [TrainConfig.from_dict(r) for r in json.loads(path.read_text())["mnist"]["runs"]]
        panel.set_configs(runs)
        back = panel.configs()
        assert len(back) == len(runs), path.name
        for a, b in zip(runs, back):
            assert resolved(a) == resolved(b), path.name
            assert (a.label_smoothing, a.early_stopping, a.augment, a.dropout_per_layer) == \
                   (b.label_smoothing, b.early_stopping, b.augment, b.dropout_per_layer), path.name
            assert a.model_params.get("dropout") == b.model_params.get("dropout"), path.name
            assert b.label == (a.label or b.label)
        first = runs[0]
        assert (back[0].epochs, back[0].batch_size, back[0].train_size, back[0].seed, back[0].model) == \
               (first.epochs, first.batch_size, first.train_size, first.seed, first.model), path.name
