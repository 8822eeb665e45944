"""GUI tests run offscreen; a test that leaves a QThread running fails."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if "OPTISCOPE_STATE_DIR" not in os.environ:  # never write the user's real last-session file
    import tempfile
    os.environ["OPTISCOPE_STATE_DIR"] = tempfile.mkdtemp(prefix="optiscope-test-state-")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def no_thread_left_running(qapp):
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication
    yield
    QApplication.processEvents()
    running = [t for t in qapp.findChildren(QThread) if t.isRunning()]
    # Workers are children of nothing; find them through the gc instead.
    import gc
    import warnings
    with warnings.catch_warnings():  # isinstance on every live object trips torch's deprecation shims
        warnings.simplefilter("ignore")
        running += [o for o in gc.get_objects() if isinstance(o, QThread) and _alive(o) and o.isRunning()]
    assert not running, f"threads left running: {running}"


def _alive(obj) -> bool:
    try:
        import shiboken6
        return shiboken6.isValid(obj)
    except Exception:
        return False


@pytest.fixture
def window(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.app import configure
    from gui.main_window import MainWindow
    configure()
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat), eager=True)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


@pytest.fixture
def panel(qtbot):
    """The 2D view alone (the whole window is not needed there, and is slower to build)."""
    from gui.app import configure
    from gui.landscape_panel import LandscapePanel
    configure()
    p = LandscapePanel()
    qtbot.addWidget(p)
    p.resize(1100, 700)
    p.show()
    yield p
    p.shutdown()


@pytest.fixture
def mnist_panel(qtbot, shared_runner):
    """The MNIST studio alone, on the module's worker; ``.messages`` collects its status-bar messages."""
    from gui.mnist_panel import MnistPanel

    p = MnistPanel()
    p.runner = shared_runner
    qtbot.addWidget(p)
    p.resize(1400, 860)
    p.show()
    messages = []
    p.message.connect(messages.append)
    p.messages = messages
    yield p
    p.stop()
    p.runner = None  # the module's worker is shut down by its own fixture
    p.shutdown()
