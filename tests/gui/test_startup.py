"""The window paints before torch loads; the panels arrive from the background; the cached map is current."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_window_starts_without_torch_and_the_panels_arrive(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.main_window import MainWindow
    from gui.startup import StartupView
    w = MainWindow(QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat), eager=False)
    qtbot.addWidget(w)
    assert w.landscape is None and isinstance(w.tabs.widget(0), StartupView)
    assert not w.play_action.isEnabled()
    with qtbot.waitSignal(w.engine_ready, timeout=120_000):
        w.show()
    assert w.landscape is not None and w.mnist is not None and w.play_action.isEnabled()
    w.close()


def test_importing_the_window_does_not_import_torch_or_pyqtgraph():
    code = "import sys, gui.app, gui.main_window; sys.exit(int('torch' in sys.modules or 'pyqtgraph' in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_the_cached_startup_map_equals_what_the_landscape_view_draws():
    sys.path.insert(0, str(ROOT / "tools"))
    from make_startup_map import OUT, compute
    fresh = compute()
    cached = np.load(OUT)
    np.testing.assert_allclose(cached["levels"], fresh["levels"], rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(cached["rgb"], fresh["rgb"])


def test_the_app_finds_its_resources_from_another_working_directory(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); from engine.datasets import load_source; "
            "from gui.startup import STARTUP_MAP; d = load_source('bundled'); "
            "print(len(d.train_labels), STARTUP_MAP.exists())" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ""})
    assert out.stdout.split() == ["5000", "True"], out.stderr


def test_the_window_settings_live_beside_the_last_session_when_the_state_folder_is_moved(monkeypatch, tmp_path):
    from gui.app import _settings

    monkeypatch.setenv("OPTISCOPE_STATE_DIR", str(tmp_path))
    settings = _settings()
    settings.setValue("view/tab", 1)
    settings.sync()
    assert settings.fileName() == str(tmp_path / "settings.ini") and (tmp_path / "settings.ini").exists()
