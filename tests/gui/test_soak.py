"""Soak: 20,000 pyqtgraph setData calls, and thousands of frames through the app's own drawing, no crash.

PySide6 6.12.0 with pyqtgraph 0.14.0 aborts after ~1,100 setData calls (DESIGN.md): these tests are what
the binding pin in pyproject.toml rests on. The race now draws paths, trails and curves through its own
layers (gui/plots.py), so the first test drives PlotDataItem/ScatterPlotItem.setData directly, as the
MNIST plots and the heads still use them. Each runs in a subprocess so an abort fails the test instead
of killing the test session.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UPDATES = 20_000
FRAMES = 2_000


def test_twenty_thousand_pyqtgraph_set_data_calls():
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import pyqtgraph as pg
        from PySide6.QtWidgets import QApplication
        from gui.app import configure
        from gui.plots import make_plot
        app = QApplication(sys.argv)
        configure()
        plot = make_plot("loss", "step", "loss")
        plot.show()
        curves = [pg.PlotDataItem() for _ in range(4)]
        heads = pg.ScatterPlotItem()
        for item in (*curves, heads):
            plot.addItem(item)
        rng = np.random.default_rng(0)
        calls = 0
        while calls < {UPDATES}:
            n = 10 + calls % 500
            for c in curves:
                c.setData(np.arange(n, dtype=float), rng.random(n))
            heads.setData(rng.random(8), rng.random(8))
            calls += len(curves) + 1
            if calls % 250 == 0:
                app.processEvents()
        print("updates", calls)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) >= UPDATES


def test_thousands_of_frames_through_the_landscape_panel():
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        from PySide6.QtWidgets import QApplication
        from gui.app import configure
        from gui.landscape_panel import LandscapePanel, RaceHistory
        from engine.landscape import LandscapeFrame
        app = QApplication(sys.argv)
        configure()
        panel = LandscapePanel()
        panel.show()
        panel.run_configs = panel.optimizers.enabled_configs()
        panel._make_items(len(panel.run_configs))
        k = len(panel.run_configs)
        panel.history = RaceHistory(k, 1)
        rng = np.random.default_rng(0)
        pos = np.zeros((k, 1, 2))
        step = 0
        while step < {FRAMES}:
            pos = pos + 0.01 * rng.normal(size=(k, 1, 2))  # trajectory-like: small steps
            f = LandscapeFrame(step=step, xy=pos, loss=rng.random((k, 1)) + 0.1,
                               grad=rng.normal(size=(k, 1, 2)), lr=np.full(k, 0.01),
                               diverged_at=np.full((k, 1), -1), evals=np.full(k, step))
            panel.history.add([f])
            panel.redraw()
            if step % 50 == 0:
                app.processEvents()
            step += 1
        print("frames", step)
        panel.shutdown()
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) == FRAMES
