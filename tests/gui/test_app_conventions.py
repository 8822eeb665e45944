"""Desktop conventions: shortcuts, settings that survive a restart, errors that explain, versions."""
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt

ROOT = Path(__file__).resolve().parents[2]


def test_shortcuts_trigger_their_actions(window, qtbot):
    panel = window.landscape
    window.tabs.setCurrentWidget(panel)
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key_Period)
    assert panel.history is not None and len(panel.history.steps) == 1
    qtbot.keyClick(window, Qt.Key_Space)
    assert panel.playing
    qtbot.keyClick(window, Qt.Key_Space)
    assert not panel.playing
    qtbot.keyClick(window, Qt.Key_R)
    assert panel.history is None
    qtbot.keyClick(window, Qt.Key_2, Qt.ControlModifier)
    assert window.tabs.currentWidget() is window.mnist
    assert "Space" in window.play_action.toolTip()


def test_settings_round_trip_through_a_restart(qtbot, tmp_path):
    from gui.main_window import MainWindow
    ini = str(tmp_path / "settings.ini")
    first = MainWindow(QSettings(ini, QSettings.IniFormat), eager=True)
    qtbot.addWidget(first)
    first.show()
    first.resize(701, 503)  # fits the offscreen screen (800 x 600): restoreGeometry clamps to the screen
    expected = (first.width(), first.height())  # the panels' minimum widths may have widened it
    assert expected != (1400, 860)
    first.landscape.splitter.setSizes([300, 500, 311])
    sizes = first.landscape.splitter.sizes()
    first.tabs.setCurrentIndex(1)
    first.set_theme("dark")
    first.close()
    second = MainWindow(QSettings(ini, QSettings.IniFormat), eager=True)
    qtbot.addWidget(second)
    second.show()
    assert (second.width(), second.height()) == expected
    assert second.tabs.currentIndex() == 1
    assert second.theme == "dark"
    second.tabs.setCurrentIndex(0)  # a hidden tab's splitter is not laid out yet
    qtbot.waitUntil(lambda: second.landscape.splitter.sizes() == sizes, timeout=5_000)
    second.close()


def test_an_exception_inside_a_run_reaches_the_user_and_the_window_stays_usable(window, qtbot, monkeypatch):
    import gui.landscape_panel as lp

    def broken(cfg, **kw):
        yield from ()
        raise RuntimeError("the engine broke on purpose")

    monkeypatch.setattr(lp, "run_landscape", broken)
    panel = window.landscape
    panel.play()
    qtbot.waitUntil(lambda: getattr(window, "last_error_box", None) is not None, timeout=10_000)
    box = window.last_error_box
    assert "the engine broke on purpose" in box.text()
    assert "RuntimeError" in box.detailedText()
    box.close()
    monkeypatch.undo()
    panel.reset()
    panel.single_step()  # still usable
    assert len(panel.history.steps) == 1


def test_version_names_app_torch_numpy_qt_and_the_binding():
    out = subprocess.run([sys.executable, "main.py", "--version"], cwd=ROOT, capture_output=True, text=True)
    text = out.stdout
    for name in ("optiscope", "torch", "numpy", "PySide6", "Qt", "pyqtgraph"):
        assert name in text
    assert "(not loaded)" not in text


def test_a_refusal_leaves_the_status_bar_once_the_field_is_fixed(window, qtbot):
    editor = window.landscape.optimizers.editors[0]
    lr = editor.form.widgets["lr"]
    lr.setText("-5")
    lr.editingFinished.emit()
    assert "greater than 0" in window.statusBar().currentMessage()
    lr.setText("0.01")
    lr.editingFinished.emit()
    assert window.statusBar().currentMessage() == ""


def test_the_add_picker_names_no_optimiser_until_one_is_chosen(window):
    optimizers = window.landscape.optimizers
    combo = optimizers.add_combo
    assert combo.currentIndex() == -1 and combo.currentText() == ""
    before = len(optimizers.editors)
    combo.activated.emit(combo.findData("adamw"))
    assert len(optimizers.editors) == before + 1 and optimizers.editors[-1].name == "adamw"
    assert optimizers.list.currentRow() == before, "the new optimiser is the one being edited"
    assert combo.currentIndex() == -1


def _type(field, text):
    field.setText(text)
    field.editingFinished.emit()


def test_a_refused_start_keeps_its_text_and_its_refusal_leaves_once_fixed(window):
    panel = window.landscape
    _type(panel.start_x, "abc")
    assert window.statusBar().currentMessage().startswith("start: expected two finite numbers")
    assert panel.start_x.text() == "abc", "the typed text stays, marked, as a refused optimiser field does"
    assert panel.input_problem().startswith("start:")
    _type(panel.start_x, "0.5")
    assert panel.start_point[0] == 0.5
    assert window.statusBar().currentMessage() == ""
    assert panel.input_problem() is None


def test_a_fixed_custom_function_and_domain_take_their_refusals_off(window):
    panel = window.landscape
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("custom"))
    panel.custom_edit.setText("x +* y")
    panel.custom_edit.returnPressed.emit()
    assert window.statusBar().currentMessage().startswith("custom f(x, y)")
    panel.custom_edit.setText("x**2 + y**2")
    panel.custom_edit.returnPressed.emit()
    assert window.statusBar().currentMessage() == ""
    _type(panel.domain_edits[1], "nope")
    assert "custom domain x to" in window.statusBar().currentMessage()
    _type(panel.domain_edits[1], "4")
    assert window.statusBar().currentMessage() == ""
    assert panel.function.domain[0] == (-3.0, 4.0)


def test_fixing_one_field_leaves_another_fields_refusal_standing(window):
    panel = window.landscape
    lr = panel.optimizers.editors[0].form.widgets["lr"]
    _type(lr, "-5")
    _type(panel.start_y, "y?")
    assert window.statusBar().currentMessage().startswith("start:")
    _type(panel.start_y, "1")
    message = window.statusBar().currentMessage()
    assert "lr" in message and "greater than 0" in message, message
    _type(lr, "0.001")
    assert window.statusBar().currentMessage() == ""
