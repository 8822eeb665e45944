"""Stopping one run of a comparison: the others go on to their end, the stopped one keeps its curves and says
that the user stopped it (legend, results table, status line, a mark on the loss plot)."""
import numpy as np
import pytest
from PySide6.QtCore import Qt



@pytest.fixture
def panel(mnist_panel):
    return mnist_panel


def _three_runs(panel, epochs):
    panel.picker.train_size.setValue(400)  # 7 steps an epoch in batches of 64
    panel.epochs.setValue(epochs)
    for k in range(3, panel.runs.count()):
        panel.runs.list.item(k).setCheckState(Qt.Unchecked)
    assert len(panel.configs()) == 3


def test_stopping_one_run_leaves_the_others_to_finish(panel, qtbot):
    _three_runs(panel, epochs=30)  # 210 steps each: long enough to stop one on the way
    panel.start()
    assert [b.isEnabled() for b in panel.legend.stops] == [True, True, True]
    qtbot.waitUntil(lambda: len(panel.traces[1].step) >= 5, timeout=90_000)
    qtbot.mouseClick(panel.legend.stops[1], Qt.LeftButton)
    assert panel.traces[1].stop_requested and panel.traces[1].state() == "stopping"
    assert not panel.legend.stops[1].isEnabled() and panel.legend.stops[0].isEnabled()
    assert panel.running()  # the comparison goes on
    assert any(m.startswith("Run 2") and "the other runs go on" in m for m in panel.messages)
    qtbot.waitUntil(lambda: panel.traces[1].finished, timeout=30_000)
    assert panel.running() and not panel.traces[0].finished and not panel.traces[2].finished
    qtbot.waitUntil(lambda: not panel.running(), timeout=120_000)
    first, stopped, third = panel.traces
    for t in (first, third):
        assert t.summary is not None and t.state() == "done" and len(t.step) == 210
        assert not t.stopped_by_user
    assert stopped.summary is None and stopped.stopped_by_user
    n = len(stopped.step)
    assert 5 <= n < 210
    assert stopped.state() == f"stopped by you at step {n}"
    # Everything it trained stays drawn, and is marked where it stopped.
    curves = panel.plots.curves
    x, y = curves.items[1]["loss"].getData()
    assert len(x) == n and x[-1] == n and np.isfinite(y).all()
    sx, _ = curves.items[1]["stopped"].getData()
    assert list(sx) == [float(n)]
    assert curves.items[1]["stop_line"].value() == n
    unmarked = curves.items[0]["stopped"].getData()[0]
    assert curves.items[0]["stop_line"] is None and (unmarked is None or len(unmarked) == 0)
    assert panel.results.item(1, 1).text() == f"stopped by you at step {n}"
    assert [panel.results.item(r, 1).text() for r in (0, 2)] == ["done", "done"]
    assert panel.legend.names[1].text().endswith("(stopped by you)")
    assert not panel.legend.names[0].text().endswith("(stopped by you)")
    assert f"Stopped by you: {stopped.label}." in panel.status.text()
    assert not any(b.isEnabled() for b in panel.legend.stops)


def test_stop_for_all_still_stops_every_run_after_one_was_stopped(panel, qtbot):
    _three_runs(panel, epochs=500)
    panel.start()
    qtbot.waitUntil(lambda: all(len(t.step) >= 3 for t in panel.traces), timeout=90_000)
    panel.stop_run(0)
    qtbot.waitUntil(lambda: panel.traces[0].finished, timeout=30_000)
    assert panel.running()
    panel.stop_run(0)  # a second press on a stopped run does nothing
    panel.toggle_run()  # the Stop button
    assert not panel.running() and panel.run_button.text() == "Train"
    qtbot.waitUntil(lambda: all(t.finished for t in panel.traces), timeout=30_000)
    for r, t in enumerate(panel.traces):
        assert t.summary is None and t.stopped_by_user and len(t.step) < 3500
        assert panel.results.item(r, 1).text().startswith("stopped by you at step ")
    assert sum(1 for m in panel.messages if m.startswith("Run 1")) == 1


def test_stop_run_is_ignored_when_nothing_trains(panel):
    panel.stop_run(0)
    panel.stop_run(5)
    assert not panel.running() and panel.traces == []


def test_a_second_comparison_in_the_same_panel_starts_and_finishes(panel, qtbot):
    """The legend is rebuilt for each comparison (its old widgets removed), and the new runs train."""
    _three_runs(panel, epochs=1)
    for _ in range(2):
        panel.start()
        assert panel.running() and len(panel.legend.stops) == 3
        assert panel.legend.row.count() == 3 * 3 + 1
        qtbot.waitUntil(lambda: not panel.running(), timeout=90_000)
        assert [t.state() for t in panel.traces] == ["done"] * 3


def test_a_hidden_panel_draws_nothing_and_catches_up_when_shown(panel, qtbot):
    _three_runs(panel, epochs=2)
    panel.start()
    panel.hide()
    qtbot.waitUntil(lambda: not panel.running(), timeout=90_000)
    assert all(len(t.step) == 14 for t in panel.traces)
    x, _ = panel.plots.curves.items[0]["loss"].getData()
    assert x is None or len(x) == 0  # nothing drawn while hidden
    panel.show()
    x, _ = panel.plots.curves.items[0]["loss"].getData()
    assert len(x) == 14
    assert [panel.results.item(r, 1).text() for r in range(3)] == ["done"] * 3


def test_a_vanishing_threshold_above_the_exploding_one_is_marked_and_refused_and_the_plots_keep_the_last(panel):
    fields = panel.diagnostics.widgets
    fields["vanish"].setText("1e-6")
    fields["vanish"].editingFinished.emit()
    assert panel._thresholds()[1] == 1e-6
    fields["vanish"].setText("1000")  # above the exploding threshold (100 by default)
    fields["vanish"].editingFinished.emit()
    assert "border" in fields["vanish"].styleSheet()
    assert any("vanish" in m and "below the exploding threshold" in m for m in panel.messages)
    assert panel._thresholds()[1] == 1e-6  # not silently the default, nor the refused value
    panel.start()
    assert not panel.traces and "Not started" in panel.status.text() and "vanish" in panel.status.text()
    fields["vanish"].setText("1e-5")
    fields["vanish"].editingFinished.emit()
    assert fields["vanish"].styleSheet() == "" and panel._thresholds()[1] == 1e-5


def test_a_batch_larger_than_the_training_digits_is_refused_before_anything_starts(panel):
    panel.picker.train_size.setValue(300)
    panel.batch.setValue(1000)
    panel.start()
    assert not panel.traces
    assert panel.status.text().startswith("Not started: batch size: 1,000 is more than the 300 training digits")

    panel.batch.setValue(64)
    panel.picker.train_size.setValue(5)  # shared settings are named by their controls, not as a run's field
    panel.start()
    assert panel.status.text().startswith("Not started: training digits: must be 0 (all) or at least 10")
