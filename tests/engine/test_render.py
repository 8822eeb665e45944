"""Headless rendering, Qt-free half: frame plans, deterministic CSVs, the video writer, `run SESSION`."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.config import OptimizerConfig
from engine.landscape import LandscapeConfig, StartsConfig, run_landscape
from engine.presets import get_preset
from engine.registry import ConfigError
from engine.render import (CsvSink, GifPalette, LandscapeStream, MnistStream, VideoWriter, frame_steps,
                           landscape_ranges, parse_size, probe_video, run_session)
from engine.session import Session, save_session
from engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_frame_plan_is_fixed_steps_per_frame_whatever_the_speed():
    assert frame_steps(10, 3).tolist() == [0, 3, 6, 9, 10]
    assert frame_steps(10, 5).tolist() == [0, 5, 10]
    assert frame_steps(10, 4, n_frames=6).tolist() == [0, 4, 8, 10, 10, 10], "held at the end"
    assert frame_steps(100, 2, n_frames=3).tolist() == [0, 2, 4], "cut short"
    with pytest.raises(ValueError):
        frame_steps(10, 0)


def test_sizes():
    assert parse_size("720p") == (1280, 720) and parse_size("1080p") == (1920, 1080)
    assert parse_size("641x361") == (640, 360), "H.264 4:2:0 needs even sides"
    for bad in ("big", "10x10", "99999x10"):
        with pytest.raises(ConfigError) as info:
            parse_size(bad)
        assert info.value.field == "size"


def test_landscape_stream_matches_the_engine_and_writes_exact_csv(tmp_path):
    cfg = LandscapeConfig(function="rosenbrock", steps=40, optimizers=(OptimizerConfig("adam", {"lr": 0.05}, label="A"),
                                                                       OptimizerConfig("sgd", {"lr": 0.001}, label="S")))
    s = LandscapeStream(cfg, tmp_path / "t.csv")
    s.advance_to(7)
    assert s.step == 7 and s.steps.view.tolist() == list(range(8))
    s.finish()
    frames = list(run_landscape(cfg, with_state=False))
    assert np.array_equal(s.xy.view, np.stack([f.xy for f in frames]))
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "step,optimizer,trajectory,x,y,loss,grad_norm,lr,diverged_at"
    assert len(lines) == 1 + 41 * 2
    step, label, traj, x, y, loss, *_ = lines[-1].split(",")
    assert (int(step), label) == (40, "S")
    assert float(x) == frames[-1].xy[1, 0, 0] and float(loss) == frames[-1].loss[1, 0], "floats written exactly"


def test_two_runs_of_a_session_give_identical_csvs(tmp_path):
    session = get_preset("gd_vs_sgd").session.with_landscape(steps=120)
    a = run_session(session, tmp_path / "a")
    b = run_session(session, tmp_path / "b")
    for fa, fb in zip(a, b):
        assert fa.name == fb.name and fa.read_bytes() == fb.read_bytes(), fa.name
    again = Session.from_dict(json.loads((tmp_path / "a" / "session.json").read_text()))
    assert again.landscape == session.landscape, "the session beside the CSV repeats the run"


def test_mnist_stream_interleaves_runs_and_csvs_repeat_exactly(tmp_path):
    runs = tuple(dataclasses.replace(r, train_size=200, epochs=2, train_eval_size=200)
                 for r in get_preset("mnist_dropout").session.mnist_runs)
    session = Session(view="mnist", mnist_runs=runs)
    out = []
    for name in ("a", "b"):
        stream = MnistStream(runs, tmp_path / name)
        stream.advance_to(3)
        assert all(t.step.view[-1] == 3 for t in stream.traces), "every run stops at the frame's step"
        stream.advance_to(4)  # the end of epoch 1 (200 digits / 50 per batch): its evaluation comes with it
        assert all(len(t.evals) == 1 and t.evals[0].step == 4 for t in stream.traces)
        stream.finish()
        out.append({f: (tmp_path / name / f).read_bytes() for f in ("steps.csv", "evals.csv", "summary.json")})
    assert out[0] == out[1]
    summary = json.loads(out[0]["summary.json"])
    assert [r["label"] for r in summary["runs"]] == ["no dropout", "dropout 0.5"]
    assert "wall_time" not in summary["runs"][0]["summary"], "no clock readings in files that must repeat"
    rows = out[0]["steps.csv"].decode().splitlines()
    assert rows[0] == "run,step,epoch,loss,lr,grad_norm" and len(rows) == 1 + 2 * 8
    del session


def test_ranges_cover_every_drawn_value():
    cfg = get_preset("schedule_cyclic").session.landscape
    r = landscape_ranges(cfg)
    s = LandscapeStream(cfg)
    s.finish()
    lr = s.lr.view
    assert r["lr"] == (lr.min(), lr.max())
    loss = s.loss.view[np.isfinite(s.loss.view) & (s.loss.view > 0)]
    assert r["loss"] == (loss.min(), loss.max())


def test_csv_sink_is_atomic(tmp_path):
    sink = CsvSink(tmp_path / "x.csv", ["a"])
    sink.write([1.0])
    assert not (tmp_path / "x.csv").exists(), "nothing under the real name until closed"
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    sink = CsvSink(tmp_path / "x.csv", ["a", "b"])
    sink.write([0.1, float("nan")])
    sink.close()
    assert (tmp_path / "x.csv").read_text() == "a,b\n0.1,nan\n"


def _frames(n, w, h):
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        img[:, : (i + 1) * w // n] = (230, 159, 0)
        img[h // 2:, :, 2] = 200
        yield img


@pytest.mark.parametrize("threaded", [False, True])
def test_video_writer_mp4_decodes_back(tmp_path, threaded):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, 320, 180, fps=30, threaded=threaded) as vw:
        for img in _frames(45, 320, 180):
            vw.write(img)
    info = probe_video(path)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (45, 320, 180, "h264")
    assert info["fps"] == pytest.approx(30)
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"], "no partial file left"


def test_video_writer_gif_and_palette(tmp_path):
    path = tmp_path / "v.gif"
    with VideoWriter(path, 160, 90, fps=10) as vw:
        for img in _frames(12, 160, 90):
            vw.write(img)
    info = probe_video(path)
    assert (info["frames"], info["width"], info["height"], info["codec"]) == (12, 160, 90, "gif")
    import av
    with av.open(str(path)) as c:
        last = list(c.decode(video=0))[-1].to_ndarray(format="rgb24")
    assert np.abs(last[0, 0].astype(int) - (230, 159, 0)).max() <= 16, "colours survive the palette"
    pal = GifPalette.from_image(next(_frames(1, 64, 32)))
    idx, argb = pal.index(np.full((2, 2, 3), (0, 114, 178), np.uint8))
    assert tuple(argb[idx[0, 0], 1:]) == (0, 114, 178), "the line colours are always in the palette"


def test_video_writer_refuses_bad_names_and_odd_sizes(tmp_path):
    with pytest.raises(ConfigError):
        VideoWriter(tmp_path / "v.avi", 320, 180)
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / "v.mp4", 321, 180)
    vw = VideoWriter(tmp_path / "v.mp4", 320, 180)
    with pytest.raises(ValueError):
        vw.write(np.zeros((10, 10, 3), np.uint8))
    vw.abort()
    assert list(tmp_path.iterdir()) == []


def test_cli_run_accepts_a_session_file_and_flags_scale_it(tmp_path, capsys):
    from engine.cli import run_cli

    session = Session(landscape=LandscapeConfig(function="ravine", steps=30, starts=StartsConfig("grid", 4),
                                                optimizers=(OptimizerConfig("momentum", {"lr": 0.01}),)))
    path = save_session(session, tmp_path / "s.json")
    out = tmp_path / "out"
    assert run_cli(["run", str(path), "--steps", "50", "--out", str(out), "--quiet"]) == 0
    rows = (out / "trajectories.csv").read_text().splitlines()
    assert len(rows) == 1 + 51 * 4, "50 steps (scaled up from 30), 4 start points"
    assert json.loads((out / "session.json").read_text())["landscape"]["steps"] == 50
    # A preset by name, and the explicit form.
    assert run_cli(["run", "session", "momentum_flat", "--steps", "10", "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert len((tmp_path / "p" / "trajectories.csv").read_text().splitlines()) == 1 + 11 * 2
    # A refused file: exit 2 and the field named; nothing written.
    bad = tmp_path / "bad.json"
    bad.write_text(path.read_text().replace('"steps": 30', '"steps": -3'))
    capsys.readouterr()
    assert run_cli(["run", str(bad), "--out", str(tmp_path / "no")]) == 2
    assert "landscape.steps" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()
    assert run_cli(["run", "no_such_preset", "--out", str(tmp_path / "no")]) == 2
    # The flag forms still work beside it.
    assert run_cli(["run", "landscape", "--steps", "5", "--out", str(tmp_path / "f")]) == 0


def test_cli_render_csv_only_needs_no_qt(tmp_path):
    code = ("import sys, engine.session, engine.presets, engine.render; from engine.cli import run_cli; "
            f"rc = run_cli(['render', 'momentum_ravine', '--steps', '20', '--csv', {str(tmp_path)!r}, '--quiet']); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph')]; "
            "sys.exit(rc or (3 if bad else 0))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "trajectories.csv").read_text().splitlines()) == 1 + 21 * 2


def test_run_session_writes_mnist_files(tmp_path):
    session = Session(view="mnist", mnist_runs=(TrainConfig(train_size=100, epochs=1, train_eval_size=100),))
    files = run_session(session, tmp_path)
    assert sorted(f.name for f in files) == ["evals.csv", "session.json", "steps.csv", "summary.json"]
