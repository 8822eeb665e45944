"""Recording clips, presenter themes, plot export and headless rendering (offscreen Qt)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QImage

from engine.presets import get_preset
from engine.registry import ConfigError
from engine.render import probe_video
from gui.export import export_landscape_metrics, export_plot, export_training_metrics
from gui.recording import (PLOT_THEMES, Recorder, apply_plot_theme, landscape_advance, record_widget, render_session,
                           widget_image)

ROOT = Path(__file__).resolve().parents[2]


def decode(path: Path) -> list[np.ndarray]:
    import av
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


class Counter:
    """A plot that grows by one point per step, and ends after ``total`` steps."""

    def __init__(self, total: int):
        self.total, self.steps, self.calls = total, 0, []
        self.widget = pg.PlotWidget()
        self.widget.resize(400, 300)
        self.widget.setXRange(0, total)
        self.widget.setYRange(0, total)
        self.curve = self.widget.plot(pen=pg.mkPen("r", width=3))

    def advance(self, n: int) -> bool:
        self.calls.append(n)
        self.steps = min(self.total, self.steps + n)
        x = np.arange(self.steps + 1, dtype=float)
        self.curve.setData(x, x)
        return self.steps < self.total


def test_record_widget_shows_a_fixed_number_of_steps_per_frame(qtbot, tmp_path):
    c = Counter(30)
    qtbot.addWidget(c.widget)
    path = record_widget(c.widget, c.advance, tmp_path / "clip.mp4", fps=30, steps_per_frame=3, size=(320, 180),
                         title="Counting", equation="f(x) = x")
    assert c.calls == [3] * 10 and c.steps == 30
    info = probe_video(path)
    assert (info["frames"], info["width"], info["height"]) == (11, 320, 180), "frame 0 plus one per 3 steps"
    frames = decode(path)
    red = [int(((f[..., 0] > 180) & (f[..., 1] < 90) & (f[..., 2] < 90)).sum()) for f in frames]
    assert all(b > a for a, b in zip(red, red[1:])), "each frame shows more of the run than the one before"


def test_fixed_frame_count_holds_the_last_state_and_gif_works(qtbot, tmp_path):
    c = Counter(10)
    qtbot.addWidget(c.widget)
    path = record_widget(c.widget, c.advance, tmp_path / "clip.gif", fps=10, steps_per_frame=5, size=(200, 150),
                         frames=6)
    info = probe_video(path)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (6, 200, 150, "gif")
    frames = decode(path)
    assert np.array_equal(frames[-1], frames[-2]), "after the run ends the last state is held"


def test_recorder_does_not_block_and_reports(qtbot, tmp_path):
    c = Counter(12)
    qtbot.addWidget(c.widget)
    rec = Recorder(c.widget, c.advance, tmp_path / "r.mp4", fps=24, steps_per_frame=4, size="480x270")
    seen = []
    rec.progress.connect(lambda done, total: seen.append(done))
    with qtbot.waitSignal(rec.finished, timeout=30_000) as blocker:
        rec.start()
    assert Path(blocker.args[0]).exists() and seen == [1, 2, 3, 4]
    assert probe_video(blocker.args[0])["frames"] == 4
    bad = Recorder(c.widget, c.advance, tmp_path / "r.avi")
    with qtbot.waitSignal(bad.failed, timeout=5_000):
        bad.start()


def test_recording_the_real_landscape_panel(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.app import configure
    from gui.main_window import MainWindow
    configure()
    w = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.show()
    panel = w.landscape
    panel.pause()
    path = record_widget(panel, landscape_advance(panel), tmp_path / "panel.mp4", steps_per_frame=5, size=(640, 360),
                         frames=8)
    assert list(panel.history.steps.view) == list(range(35)), "7 advances of exactly 5 steps"
    assert probe_video(path)["frames"] == 8
    w.close()


def test_render_session_video_and_identical_csvs(qtbot, tmp_path):
    session = get_preset("momentum_ravine").session.with_landscape(steps=40)
    a = render_session(session, video=tmp_path / "a.mp4", csv_dir=tmp_path / "a", steps_per_frame=4, size="480x270")
    info = probe_video(a.video)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (11, 480, 270, "h264")
    b = render_session(session, csv_dir=tmp_path / "b")
    assert (tmp_path / "a" / "trajectories.csv").read_bytes() == (tmp_path / "b" / "trajectories.csv").read_bytes()
    assert len((tmp_path / "a" / "trajectories.csv").read_text().splitlines()) == 1 + 41 * 2
    assert b.video is None and {p.name for p in b.files} == {"trajectories.csv", "session.json"}
    # A clip of a fixed length at 1080p, presenter theme: the last state is held.
    c = render_session(session, video=tmp_path / "c.mp4", seconds=1, fps=20, size="1080p", theme="presenter-dark",
                       steps_per_frame=10)
    assert probe_video(c.video)["frames"] == 20 and probe_video(c.video)["height"] == 1080
    frames = decode(c.video)
    assert frames[-1].mean() < 110, "dark theme"


def test_render_mnist_session(qtbot, tmp_path):
    import dataclasses
    runs = tuple(dataclasses.replace(r, train_size=100, epochs=2, train_eval_size=100)
                 for r in get_preset("mnist_label_smoothing").session.mnist_runs)
    session = get_preset("mnist_label_smoothing").session.replace(mnist_runs=runs)
    r = render_session(session, video=tmp_path / "m.mp4", csv_dir=tmp_path / "m", steps_per_frame=1, size="480x270")
    assert probe_video(r.video)["frames"] == 2 * 2 + 1
    evals = (tmp_path / "m" / "evals.csv").read_text().splitlines()
    assert len(evals) == 1 + 2 * 2


def test_cli_render_end_to_end(tmp_path):
    out = tmp_path / "clip.mp4"
    proc = subprocess.run([sys.executable, "main.py", "render", "schedule_cyclic", "--steps", "30", "--video", str(out),
                           "--csv", str(tmp_path / "csv"), "--size", "320x180", "--steps-per-frame", "3"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "11 frames, 320x180" in proc.stdout
    assert "render [" in proc.stderr, "a progress bar"
    assert probe_video(out)["frames"] == 11
    assert json.loads((tmp_path / "csv" / "session.json").read_text())["landscape"]["steps"] == 30
    bad = subprocess.run([sys.executable, "main.py", "render", "schedule_cyclic", "--video", str(tmp_path / "x.avi")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "video" in bad.stderr


def _red_centre(img: QImage) -> tuple[float, float]:
    img = img.convertToFormat(QImage.Format_RGB32)
    a = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, : img.width()]
    red = (a[..., 2] > 200) & (a[..., 1] < 60) & (a[..., 0] < 60)
    ys, xs = np.nonzero(red)
    return xs.mean() / img.width(), ys.mean() / img.height()


@pytest.fixture
def marker_plot(qtbot):
    w = pg.PlotWidget(background="w")
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.setLabel("bottom", "step")
    w.setLabel("left", "loss")
    legend = w.addLegend()
    w.plot([0, 10], [0, 10], pen=pg.mkPen("b", width=2), name="a line")
    w.addItem(pg.ScatterPlotItem([2, 8], [8, 2], size=20, brush=pg.mkBrush("r"), pen=None))
    w.setXRange(0, 10, padding=0)
    w.setYRange(0, 10, padding=0)
    w.show()
    qtbot.waitExposed(w)
    return w, legend


def test_export_png_at_a_chosen_size_keeps_markers_where_they_are_on_screen(marker_plot, tmp_path):
    w, _ = marker_plot
    screen = _red_centre(w.grab().toImage())
    for size in ((1200, 900), (800, None)):
        path = export_plot(w, tmp_path / f"p{size[0]}.png", *size)
        img = QImage(str(path))
        assert (img.width(), img.height()) == (size[0], size[1] or 600)
        assert np.allclose(_red_centre(img), screen, atol=0.01), "markers in the same place as on screen"
    assert w.size().width() == 400, "the widget is back at its own size"


def test_export_svg_has_legend_and_axis_labels(marker_plot, tmp_path):
    w, _ = marker_plot
    text = export_plot(w, tmp_path / "p.svg").read_text()
    assert text.startswith("<?xml") and "<svg" in text
    for word in ("a line", "loss", "step"):
        assert word in text
    with pytest.raises(ConfigError):
        export_plot(w, tmp_path / "p.jpg")


def test_presenter_themes_scale_lines_without_compounding(marker_plot):
    w, legend = marker_plot
    curve = w.getPlotItem().listDataItems()[0]
    apply_plot_theme(w, "presenter-light")
    assert curve.opts["pen"].widthF() == pytest.approx(4.0)
    apply_plot_theme(w, "presenter-light")
    assert curve.opts["pen"].widthF() == pytest.approx(4.0), "idempotent"
    apply_plot_theme(w, "presenter-dark")
    assert w.backgroundBrush().color().name().upper() == PLOT_THEMES["presenter-dark"].background
    assert w.getAxis("left").style["tickFont"].pixelSize() == PLOT_THEMES["presenter-dark"].font_px
    apply_plot_theme(w, "default")
    assert curve.opts["pen"].widthF() == pytest.approx(2.0)
    img = widget_image(w, 320, 240, "presenter-dark", title="T")
    assert img.shape == (240, 320, 3)
    with pytest.raises(ConfigError):
        apply_plot_theme(w, "neon")


def test_export_metrics_csv_and_json(tmp_path):
    from engine.render import LandscapeStream, RunTrace
    from engine.training import TrainConfig

    s = LandscapeStream(get_preset("momentum_ravine").session.landscape.__class__(steps=5))
    s.finish()
    csv_path = export_landscape_metrics(s, s.labels, tmp_path / "m.csv")
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "step,optimizer,x,y,loss,grad_norm,lr" and len(rows) == 1 + 6
    data = json.loads(export_landscape_metrics(s, s.labels, tmp_path / "m.json").read_text())
    assert data["steps"] == list(range(6)) and data["optimizers"][0]["label"] == s.labels[0]
    t = RunTrace("run", TrainConfig())
    for k in range(3):
        for g, v in ((t.step, k + 1), (t.loss, 2.0 - k), (t.lr, 0.1), (t.grad_norm, 1.0)):
            g.append(v)
    rows = export_training_metrics(t, tmp_path / "t.csv", "run").read_text().splitlines()
    assert len(rows) == 1 + 3 and rows[1].startswith("step,run,1,")
    assert json.loads(export_training_metrics(t, tmp_path / "t.json").read_text())["steps"]["loss"] == [2.0, 1.0, 0.0]


def test_theme_names_agree_between_sessions_cli_and_plots():
    from engine.render import RENDER_THEMES
    from engine.session import THEMES as SESSION_THEMES
    from gui.recording import PLOT_THEMES
    assert tuple(PLOT_THEMES) == tuple(SESSION_THEMES) == tuple(RENDER_THEMES)
