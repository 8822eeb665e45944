"""Drawing speed of the 2D race: the app's own drawing path against raw pyqtgraph drawing the same data.

    python bench/bench_drawing.py [--frames F] [--rounds R] [--quick] [--grab]

Offscreen, both windows 1280x800, measured in one run, alternating app / raw for R rounds (best round of
each printed, so both see the same machine load).

A frame is: feed the data (the app's ``_consume``, or raw ``setData`` calls), then
``QApplication.processEvents()``, in which Qt repaints what changed into the window's backing store,
as it does on screen: the map and the curve plots, not the controls beside them. The bench counts the
paint events of every plot's viewport and prints them per frame: the map must be painted at least once
per frame on both sides (else the run is refused: it would time feeding alone). Raw's curve plots are
painted twice a frame (its auto range changes after each paint and asks for another); the app's as often
as it redraws them, at most 30 times a second while playing (``CURVE_REFRESH_S``: the map animates at the
frame rate, the curves move by a pixel or two a frame), so at 60 fps about every other frame.
The same method runs on both sides. ``--grab`` measures the older way instead: ``widget.grab()`` after
each feed, which repaints the whole window, controls included (every widget, changed or not), and never
lets Qt process the repaints that auto ranges ask for.

* **app**: a real ``LandscapePanel`` fed synthetic ``LandscapeFrame``\\ s through its real path
  (``_consume``: history, convergence tracker, decay plot, ``redraw`` with its heads, trail or path layer,
  mean curves at their 30 Hz, status line and legend; side tabs at their 10 Hz), then the frame's repaint.
* **raw**: a bare widget of the same size holding a ``PlotWidget`` map and three curve ``PlotWidget``\\ s
  with the same number of ``ScatterPlotItem`` / ``PlotDataItem``\\ s, fed the same data with one
  ``setData`` each per frame, no thinning and no decimation (what plain pyqtgraph code would do),
  then the frame's repaint.

Cases (targets: app >= 60 fps offscreen and app / raw >= 0.8):

(a) 8 optimisers x 1,000-point clouds, one step per frame (heads + 20-step fading trails in 4 age bands;
    1-pixel trails and curves, no antialiasing). Raw redraws every trail segment each frame; the app
    draws each step's new segments once into its trail layer.
(b) 8 single-start trajectories of 100,000 steps: the history is filled to 100,000 steps first, then each
    frame appends 10 more steps and draws the whole path (the app strokes the 10 new steps into its path
    layer and draws curves of two points per pixel column; raw draws all of it).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtCore import QEvent, QObject, Qt  # noqa: E402
from PySide6.QtWidgets import QApplication, QHBoxLayout, QSplitter, QWidget  # noqa: E402

SIZE = (1280, 800)
K = 8
GRAB = False  # --grab: a frame ends with widget.grab() instead of processEvents()


class PaintCounter(QObject):
    """Counts paint events of the viewports it is installed on (to check that a frame really paints)."""

    def __init__(self, widgets):
        super().__init__()
        self.count = 0
        for w in widgets:
            w.viewport().installEventFilter(self)

    def eventFilter(self, obj, event):
        if event.type() == QEvent.Paint:
            self.count += 1
        return False


def show_frame(widget) -> None:
    """End a frame: let Qt paint what changed (or, with --grab, repaint the whole window)."""
    if GRAB:
        widget.grab()
    else:
        QApplication.processEvents()


def synthetic_frames(k: int, n: int, steps: int, start: int = 0, seed: int = 0, pos=None):
    """Random-walk frames inside Rosenbrock's domain, one step apart."""
    from engine.landscape import LandscapeFrame
    rng = np.random.default_rng(seed + start)
    if pos is None:
        pos = np.stack([rng.uniform(-1.5, 1.5, (k, n)), rng.uniform(-0.5, 2.5, (k, n))], axis=-1)
    alive = np.full((k, n), -1, dtype=np.int64)
    frames = []
    for t in range(start, start + steps):
        pos = np.clip(pos + 0.01 * rng.normal(size=pos.shape), [-2.0, -1.0], [2.0, 3.0])
        frames.append(LandscapeFrame(step=t, xy=pos, loss=rng.random((k, n)) + 0.1,
                                     grad=rng.normal(size=(k, n, 2)), lr=np.full(k, 0.01), diverged_at=alive,
                                     evals=np.full(k, t + 1)))
    return frames, pos


class FakeWorker:
    """Stands in for the GeneratorWorker: ``take`` hands out the prepared frames."""

    def __init__(self):
        self.frames = []

    def take(self, n):
        out, self.frames = self.frames[:n], self.frames[n:]
        return out

    def finished_and_drained(self):
        return False

    def stop(self):
        pass


def make_app_panel(n: int):
    from engine.config import OptimizerConfig
    from engine.diagnostics import ConvergenceTracker
    from engine.landscape import LandscapeConfig, StartsConfig
    from gui.landscape_panel import LandscapePanel, RaceHistory
    panel = LandscapePanel()
    panel.resize(*SIZE)
    panel.show()
    panel.timer.stop()  # frames come from the bench, not the timer
    names = ("gd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad", "sgd")
    starts = StartsConfig("disc", n, 0.5) if n > 1 else StartsConfig()
    cfg = LandscapeConfig(function="rosenbrock", starts=starts, steps=1000,
                          optimizers=tuple(OptimizerConfig(nm if nm != "nesterov" else "momentum",
                                                           {"lr": 0.001}, label=f"opt {j}")
                                           for j, nm in enumerate(names)))
    panel.set_config(cfg)
    panel.run_configs = panel.optimizers.enabled_configs()
    panel._make_items(len(panel.run_configs), n)
    panel.history = RaceHistory(K, n)
    panel.tracker = ConvergenceTracker.for_run(panel.config())
    panel.decay_plot.reset(panel.run_configs)
    panel.worker = FakeWorker()
    panel.playing = True  # as while playing (set_config paused): side tabs and curves at their refresh rates
    return panel


class RawView(QWidget):
    """Plain pyqtgraph: a map and three curve plots, the same items as the app, fed with setData."""

    def __init__(self, k: int, cloud: bool, bands: int):
        super().__init__()
        from gui.style import colour, symbol
        self.map = pg.PlotWidget()
        self.curve_plots = [pg.PlotWidget() for _ in range(3)]
        for p in self.curve_plots:
            p.setLogMode(False, True)
        side = QSplitter(Qt.Vertical)
        for p in self.curve_plots:
            side.addWidget(p)
        lay = QHBoxLayout(self)
        lay.addWidget(self.map, 3)
        lay.addWidget(side, 2)
        self.heads, self.paths, self.trails, self.curves = [], [], [], []
        for i in range(k):
            c = colour(i)
            if cloud:
                bl = []
                for b in range(bands):
                    qc = pg.mkColor(c)
                    qc.setAlpha(int(255 * (b + 1) / (bands + 1)))
                    item = pg.PlotDataItem(pen=pg.mkPen(qc, width=1), connect="finite", antialias=False)
                    self.map.addItem(item)
                    bl.append(item)
                self.trails.append(bl)
            else:
                item = pg.PlotDataItem(pen=pg.mkPen(c, width=2), connect="finite")
                self.map.addItem(item)
                self.paths.append(item)
            head = pg.ScatterPlotItem(symbol=symbol(i), size=7 if cloud else 11,
                                      pen=pg.mkPen("k", width=0.5 if cloud else 1), brush=pg.mkBrush(c))
            self.map.addItem(head)
            self.heads.append(head)
            row = []
            for p in self.curve_plots:
                curve = pg.PlotDataItem(pen=pg.mkPen(c, width=1), connect="finite", antialias=False)
                p.addItem(curve)
                row.append(curve)
            self.curves.append(row)
        self.map.setRange(xRange=(-2, 2), yRange=(-1, 3), padding=0)
        self.resize(*SIZE)
        self.show()


def time_frames(draw, frames: int) -> float:
    """Frames per second of ``draw(i)`` over ``frames`` calls (after two warm-up frames)."""
    draw(-2)
    draw(-1)
    t0 = time.perf_counter()
    for i in range(frames):
        draw(i)
    return frames / (time.perf_counter() - t0)


def measure(panel, raw, draw_app, draw_raw, frames: int, rounds: int):
    """Alternating rounds of app and raw frames; fps of each round, and paints per frame of the maps and
    curve plots (app map, app curves, raw map, raw curves). Refuses a run in which any frame did not
    paint its map."""
    counters = [PaintCounter([panel.map_plot]), PaintCounter([panel.loss_plot, panel.grad_plot, panel.lr_plot]),
                PaintCounter([raw.map]), PaintCounter(raw.curve_plots)]
    QApplication.processEvents()
    unpainted = [0, 0]  # frames after which a map had not been painted, app and raw

    def checked(draw, counter, side):
        def frame(i):
            before = counter.count
            draw(i)
            if counter.count == before:
                unpainted[side] += 1
        return frame
    draw_app = checked(draw_app, counters[0], 0)
    draw_raw = checked(draw_raw, counters[2], 1)
    app_fps, raw_fps = [], []
    app_paints, raw_paints = [0, 0], [0, 0]
    for _ in range(rounds):
        before = [c.count for c in counters]
        app_fps.append(time_frames(draw_app, frames))
        app_paints = [a + c.count - b for a, c, b in zip(app_paints, counters[:2], before[:2])]
        before = [c.count for c in counters]
        raw_fps.append(time_frames(draw_raw, frames))
        raw_paints = [a + c.count - b for a, c, b in zip(raw_paints, counters[2:], before[2:])]
    shown = rounds * (frames + 2)  # time_frames draws two warm-up frames
    per_frame = [p / shown for p in app_paints + raw_paints]
    if not GRAB and any(unpainted):
        raise SystemExit(f"frames that did not paint the map: app {unpainted[0]}, raw {unpainted[1]}: "
                         "that would time feeding alone")
    return app_fps, raw_fps, per_frame


def case_cloud(app, frames: int, rounds: int, n: int = 1000):
    from gui.landscape_panel import TRAIL_BANDS, TRAIL_STEPS
    panel = make_app_panel(n)
    raw = RawView(K, cloud=True, bands=TRAIL_BANDS)
    total = frames * rounds + 8
    all_frames, _ = synthetic_frames(K, n, total)
    # raw keeps its own window of positions and per-step means (the same data the app draws)
    state = {"ring": [], "steps": [], "loss": [], "grad": [], "lr": [], "next_app": 0, "next_raw": 0}

    def draw_app(_):
        f = all_frames[state["next_app"]]
        state["next_app"] += 1
        panel.worker.frames.append(f)
        panel._consume(1)
        show_frame(panel)

    def draw_raw(_):
        f = all_frames[state["next_raw"]]
        state["next_raw"] += 1
        state["ring"] = (state["ring"] + [f.xy])[-(TRAIL_STEPS + 1):]
        state["steps"].append(f.step)
        state["loss"].append(f.loss.mean(axis=1))
        state["grad"].append(f.grad_norm.mean(axis=1))
        state["lr"].append(f.lr)
        trail = np.stack(state["ring"])  # (L, K, N, 2)
        length = len(trail)
        edges = np.linspace(0, length - 1, TRAIL_BANDS + 1).round().astype(int)
        steps = np.array(state["steps"], dtype=float)
        series = [np.array(state[s]) for s in ("loss", "grad", "lr")]
        for i in range(K):
            for b, item in enumerate(raw.trails[i]):
                lo, hi = edges[b], edges[b + 1]
                if hi <= lo:
                    item.setData([], [])
                    continue
                seg = np.concatenate([trail[lo:hi + 1, i], np.full((1, n, 2), np.nan)]).transpose(1, 0, 2)
                flat = seg.reshape(-1, 2)
                item.setData(flat[:, 0], flat[:, 1])
            raw.heads[i].setData(f.xy[i, :, 0], f.xy[i, :, 1])
            for curve, values in zip(raw.curves[i], series):
                curve.setData(steps, values[:, i])
        show_frame(raw)

    app_fps, raw_fps, paints = measure(panel, raw, draw_app, draw_raw, frames, rounds)
    heads = [len(h.getData()[0]) for h in panel.heads]
    assert heads == [n] * K, heads
    nbytes = panel.history.nbytes()
    panel.shutdown()
    panel.close()
    raw.close()
    return max(app_fps), max(raw_fps), nbytes, paints


def case_long_paths(app, frames: int, rounds: int, steps: int = 100_000, per_frame: int = 10):
    panel = make_app_panel(1)
    raw = RawView(K, cloud=False, bands=0)
    # fill both histories to ``steps`` steps (the app through its history, raw as plain arrays)
    fill, pos = synthetic_frames(K, 1, steps)
    panel.history.add(fill)
    for f in fill:
        panel.tracker.update(f)
    xs = np.stack([f.xy[:, 0] for f in fill])  # (T, K, 2)
    loss = np.stack([f.loss[:, 0] for f in fill])
    grad = np.stack([f.grad_norm[:, 0] for f in fill])
    lr = np.stack([f.lr for f in fill])
    del fill
    more, _ = synthetic_frames(K, 1, per_frame * (frames * rounds * 2 + 8), start=steps, pos=pos)
    state = {"app": 0, "raw": 0, "xy": xs, "loss": loss, "grad": grad, "lr": lr}

    def draw_app(_):
        a = state["app"]
        state["app"] += per_frame
        panel.worker.frames.extend(more[a:a + per_frame])
        panel._consume(per_frame)
        show_frame(panel)

    def draw_raw(_):
        a = state["raw"]
        state["raw"] += per_frame
        new = more[a:a + per_frame]
        # a plain growing array, as simple code would keep it (np.concatenate each frame)
        state["xy"] = np.concatenate([state["xy"], np.stack([f.xy[:, 0] for f in new])])
        state["loss"] = np.concatenate([state["loss"], np.stack([f.loss[:, 0] for f in new])])
        state["grad"] = np.concatenate([state["grad"], np.stack([f.grad_norm[:, 0] for f in new])])
        state["lr"] = np.concatenate([state["lr"], np.stack([f.lr for f in new])])
        t = np.arange(len(state["xy"]), dtype=float)
        for i in range(K):
            raw.paths[i].setData(state["xy"][:, i, 0], state["xy"][:, i, 1])
            raw.heads[i].setData(new[-1].xy[i, :, 0], new[-1].xy[i, :, 1])
            for curve, key in zip(raw.curves[i], ("loss", "grad", "lr")):
                curve.setData(t, state[key][:, i])
        show_frame(raw)

    app_fps, raw_fps, paints = measure(panel, raw, draw_app, draw_raw, frames, rounds)
    n_steps = len(panel.history.steps)
    panel.shutdown()
    panel.close()
    raw.close()
    return max(app_fps), max(raw_fps), n_steps, paints


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60, help="frames timed per round and side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="10 frames, 1 round")
    ap.add_argument("--grab", action="store_true", help="end a frame with widget.grab() (repaints everything)")
    args = ap.parse_args()
    global GRAB
    GRAB = args.grab
    if args.quick:
        args.frames, args.rounds = 10, 1
    app = QApplication.instance() or QApplication(sys.argv)
    from gui.app import configure
    configure()
    method = "grab() of the window" if GRAB else "processEvents() (Qt repaints what changed)"
    print(f"window {SIZE[0]}x{SIZE[1]} offscreen, a frame ends with {method}, best of {args.rounds} rounds "
          f"x {args.frames} frames; targets: app >= 60 fps, app/raw >= 0.8")

    def painted(p):
        return (f"   paints/frame: app map {p[0]:.2f}, curves {p[1]:.2f} (3 plots) | "
                f"raw map {p[2]:.2f}, curves {p[3]:.2f} (3 plots)")
    a_app, a_raw, nbytes, paints = case_cloud(app, args.frames, args.rounds)
    print(f"(a) {K} x 1,000-point clouds: app {a_app:6.1f} fps | raw pyqtgraph {a_raw:6.1f} fps | "
          f"ratio {a_app / a_raw:.2f} | history {nbytes / 1e6:.1f} MB")
    print(painted(paints))
    b_app, b_raw, n_steps, paints = case_long_paths(app, args.frames, args.rounds)
    print(f"(b) {K} paths of 100,000 steps (to {n_steps:,}): app {b_app:6.1f} fps | raw pyqtgraph {b_raw:6.1f} fps"
          f" | ratio {b_app / b_raw:.2f}")
    print(painted(paints))


if __name__ == "__main__":
    main()
