"""Open the main window, run each view for some frames, close it; bad input is refused with a message."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_landscape_runs_and_draws_finite_data(window, qtbot):
    panel = window.landscape
    panel.play()
    qtbot.waitUntil(lambda: panel.history is not None and len(panel.history.steps) > 50, timeout=20_000)
    panel.pause()
    h = panel.history
    assert h.xy.view.shape[1:] == (4, 1, 2)
    x, y = panel.paths[0].getData()
    assert len(x) > 50 and np.isfinite(x[:-1]).all()
    assert "step" in panel.status_label.text()
    panel.reset()
    assert panel.worker is None and panel.history is None


def test_single_step_advances_exactly_one_step(window, qtbot):
    panel = window.landscape
    panel.single_step()
    panel.single_step()
    assert list(panel.history.steps.view) == [0, 1]


def test_clicking_the_map_restarts_every_trajectory_there(window, qtbot):
    panel = window.landscape
    panel.start_point = (0.5, 0.5)
    panel._show_start()
    panel.reset()
    panel.single_step()
    np.testing.assert_allclose(panel.history.xy.view[0, :, 0], [[0.5, 0.5]] * 4)


def test_divergence_is_marked_and_nothing_non_finite_is_drawn(window, qtbot):
    panel = window.landscape
    panel.optimizers.clear()
    panel.optimizers.add("gd", {"lr": 0.1})
    panel.optimizers.add("adam", {"lr": 0.01})
    panel.reset()
    panel.steps_spin.setValue(60)
    panel.play()
    qtbot.waitUntil(lambda: panel.worker is not None and panel.worker.finished_and_drained()
                    or (panel.history is not None and len(panel.history.steps) == 61), timeout=20_000)
    qtbot.waitUntil(lambda: len(panel.history.steps) == 61, timeout=20_000)
    assert "GD: diverged at step" in panel.status_label.text()
    x, y = panel.paths[0].getData()
    finite = np.isfinite(x)
    assert finite.sum() > 0 and np.all(np.abs(x[finite]) < 1e6)
    panel.reset()


def test_out_of_range_input_is_refused_with_a_message(window, qtbot):
    panel = window.landscape
    editor = panel.optimizers.editors[0]
    lr = editor.form.widgets["lr"]
    messages = []
    panel.message.connect(messages.append)
    lr.setText("-5")
    lr.editingFinished.emit()
    assert any("learning rate" in m or "lr" in m for m in messages) or lr.error
    assert "greater than 0" in lr.error
    panel.play()  # refused, not a traceback
    assert panel.worker is None
    assert any("lr" in m and "greater than 0" in m for m in messages)
    lr.setText("0.001")
    lr.editingFinished.emit()
    panel.play()
    assert panel.worker is not None
    panel.reset()


def test_mnist_view_trains_and_reports(window, qtbot):
    window.tabs.setCurrentIndex(1)
    panel = window.mnist
    panel.epochs.setValue(1)
    panel.start()
    qtbot.waitUntil(lambda: panel.trace is not None and panel.trace.summary is not None, timeout=60_000)
    assert len(panel.trace.step) == 63
    assert panel.trace.val_acc.view[-1] > 0.5
    assert "best val acc" in panel.status.text()


def test_closing_mid_run_exits_cleanly():
    script = textwrap.dedent("""
        import sys
        from PySide6.QtCore import QSettings, QTimer
        from PySide6.QtWidgets import QApplication
        from gui.app import configure
        from gui.main_window import MainWindow
        app = QApplication(sys.argv)
        configure()
        w = MainWindow(QSettings("{ini}", QSettings.IniFormat))
        w.show()
        w.landscape.play()
        w.mnist.epochs.setValue(50)
        w.mnist.start()
        QTimer.singleShot(2500, w.close)
        sys.exit(app.exec())
    """).format(ini=str(ROOT / ".pytest_cache" / "close-test.ini"))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert "QThread: Destroyed while thread is still running" not in result.stderr
