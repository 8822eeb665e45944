"""Basins and sweep maps in the GUI: computed off the GUI thread, drawn, and a sweep cell replays in the race."""
import numpy as np

from engine.sweep import SweepAxis


def test_basin_map_of_himmelblau_shows_four_basins(window, qtbot):
    panel = window.explore
    panel.basin_resolution.setValue(40)
    panel.basin_steps.setValue(300)
    panel.basin_compare.setChecked(False)
    panel.basin_pickers[0].form.set_values({"lr": 0.01})
    panel._basins_clicked()
    qtbot.waitUntil(lambda: not panel.basin_jobs[0].running and "min 4" in panel.basin_summary.text(),
                    timeout=60_000)
    image = panel.basin_views[0][1].image
    assert image.shape == (40, 40, 3)
    colours = {tuple(c) for c in image.reshape(-1, 3)}
    assert len(colours) >= 4  # four basins (plus perhaps grey)


def test_sweep_runs_draws_and_a_click_replays_the_cell_in_the_race(window, qtbot):
    panel = window.explore
    combo, lo, hi, count, logbox, _ = panel.axis_widgets["x"]
    count.setValue(8)
    panel.axis_widgets["y"][3].setValue(6)
    panel.sweep_steps.setValue(100)
    panel._sweep_clicked_button()
    qtbot.waitUntil(lambda: panel.sweep_result is not None, timeout=60_000)
    r = panel.sweep_result
    assert r.final_loss.shape == (6, 8)
    assert panel.sweep_image.image.shape == (6, 8)
    got = []
    window.landscape.message.connect(got.append)
    cfg = panel.replay_cell(3, 2)
    assert window.tabs.currentWidget() is window.landscape
    assert cfg.optimizers[0].params["lr"] == r.x_values[3]


def test_bad_sweep_range_is_refused_with_the_field_named(window, qtbot):
    panel = window.explore
    panel.axis_widgets["x"][1].setText("fast")
    messages = []
    panel.message.connect(messages.append)
    panel._sweep_clicked_button()
    assert messages and "sweep.x" in messages[0]
    assert not panel.sweep_job.running
