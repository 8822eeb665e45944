"""Basins and sweep maps in the GUI: computed off the GUI thread, drawn, and a sweep cell replays in the race."""
import math

import numpy as np



def test_basin_map_of_himmelblau_shows_four_basins(window, qtbot):
    panel = window.explore
    panel.basin_resolution.setValue(40)
    panel.basin_steps.setValue(300)
    panel.basin_compare.setChecked(False)
    panel.basin_pickers[0].form.set_values({"lr": 0.01})
    panel._basins_clicked()
    qtbot.waitUntil(lambda: not panel.basin_jobs[0].running and panel.basin_summary.text().count("&#9632;") == 4,
                    timeout=60_000)
    assert "(3, 2)" in panel.basin_summary.text(), "each colour is keyed to the minimum it stands for"
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
    # the race runs what its fields hold: the cell's exact values, not six-digit roundings of them
    raced = window.landscape.config().optimizers[0].params
    assert raced[r.config.x.param] == r.x_values[3] and raced[r.config.y.param] == r.y_values[2]
    assert any(f"{v:.6g}" != repr(v) for v in (r.x_values[3], r.y_values[2])), "a value six digits cannot say"


def test_bad_sweep_range_is_refused_with_the_field_named(window, qtbot):
    panel = window.explore
    panel.axis_widgets["x"][1].setText("fast")
    messages = []
    panel.message.connect(messages.append)
    panel._sweep_clicked_button()
    assert messages and "sweep.x" in messages[0]
    assert not panel.sweep_job.running


def test_cancelling_a_long_basin_map_stops_it_promptly_and_leaves_no_thread(window, qtbot):
    """A 400 x 400 grid of 100,000 steps would take minutes; Cancel must stop it (the engine reports at
    least every 0.1 s, and the stop is noticed there) and the app goes on."""
    panel = window.explore
    panel.basin_resolution.setValue(400)
    panel.basin_steps.setValue(100_000)
    panel.basin_compare.setChecked(False)
    panel._basins_clicked()
    job = panel.basin_jobs[0]
    worker = job.worker
    qtbot.waitUntil(worker.isRunning, timeout=30_000)
    panel._basins_clicked()  # the button reads Cancel now
    assert not job.running and not worker.isRunning() and job._stopping == []
    assert panel.basin_button.text() == "Compute basins"


def test_a_cancelled_job_whose_step_outlasts_the_wait_is_kept_until_it_ends(window, qtbot):
    """Dropping a QThread that still runs aborts the process: a job cancelled in the middle of a long step
    keeps its worker until the step ends, and shutting down waits for it."""
    import threading

    from gui.explore_panel import _Job
    panel = window.explore
    release, entered = threading.Event(), threading.Event()

    def slow():
        yield 1
        entered.set()
        release.wait(30)  # one step longer than cancel() waits
        yield 2

    job = _Job(panel, panel.basin_progress, panel.basin_button, "Compute basins")
    job.start(slow, lambda result: None)
    qtbot.waitUntil(entered.is_set, timeout=10_000)
    job.cancel()
    assert not job.running and len(job._stopping) == 1 and job._stopping[0].isRunning()
    release.set()
    job.shutdown()
    assert job._stopping == []


def test_sweep_axes_are_labelled_with_the_swept_values_not_cell_indices(window, qtbot):
    from gui.explore_panel import value_ticks
    panel = window.explore
    panel.axis_widgets["x"][3].setValue(8)
    panel.axis_widgets["y"][3].setValue(5)
    panel.sweep_steps.setValue(50)
    panel._sweep_clicked_button()
    qtbot.waitUntil(lambda: panel.sweep_result is not None, timeout=60_000)
    r = panel.sweep_result
    ticks = panel.sweep_plot.getPlotItem().getAxis("bottom")._tickLevels[0]
    assert ticks[0] == (0.0, f"{r.x_values[0]:.3g}") and ticks[-1] == (7.0, f"{r.x_values[-1]:.3g}")
    assert "cell index" not in panel.sweep_plot.getPlotItem().getAxis("bottom").labelText
    assert [pos for pos, _ in value_ticks(np.arange(64.0))[0]] == [0, 13, 25, 38, 50, 63]


def test_a_small_share_is_never_rounded_to_nothing():
    from gui.explore_panel import share_text
    assert share_text(0, 40_000) == "0%" and share_text(40_000, 40_000) == "100%"
    assert share_text(120, 40_000) == "0.3% (120 starts)" and share_text(3, 40_000) == "3 starts"
    assert share_text(10_400, 40_000) == "26%"


def test_cells_that_end_exactly_at_the_minimum_do_not_stretch_the_colour_scale(window):
    from engine.sweep import SweepAxis, SweepConfig, run_sweep

    r = run_sweep(SweepConfig(function="booth", optimizer="momentum", x=SweepAxis("lr", 0.001, 0.2, 16, True),
                              y=SweepAxis("momentum", 0.0, 0.99, 16), steps=500))
    assert (r.final_loss == 0.0).any(), "some cells land exactly on Booth's minimum"
    panel = window.explore
    panel.sweep_metric.setCurrentIndex(0)
    panel._show_sweep(r)
    lo, hi = panel.sweep_bar.levels()
    assert lo == math.log10(r.config.tol * 1e-6) and hi > lo + 3
    assert "floored at 1e-12" in panel.sweep_plot.getPlotItem().titleLabel.text


def test_a_new_computation_clears_both_maps_and_a_cancel_says_so(window, qtbot):
    panel = window.explore
    panel.basin_resolution.setValue(20)
    panel.basin_steps.setValue(50)
    panel.basin_compare.setChecked(True)
    panel._basins_clicked()
    qtbot.waitUntil(lambda: not panel.basin_jobs[0].running and not panel._pending_basins, timeout=60_000)
    assert all(view[1].image is not None for view in panel.basin_views)
    panel.basin_steps.setValue(100_000)
    panel._basins_clicked()
    (plot_a, image_a, _, _), (plot_b, image_b, _, _) = panel.basin_views
    # The previous maps are gone at once: cancelling must not leave one beside a new one.
    assert image_a.image is None and image_b.image is None
    assert plot_a.getPlotItem().titleLabel.text.endswith("computing...")
    assert plot_b.getPlotItem().titleLabel.text.endswith("waiting...")
    panel._basins_clicked()  # Cancel
    assert [v[0].getPlotItem().titleLabel.text for v in panel.basin_views] == ["cancelled", "cancelled"]
    assert not panel.basin_jobs[0].running


def test_swept_fields_are_off_and_a_bad_one_does_not_block_the_sweep(window):
    panel = window.explore
    panel.sweep_picker.combo.setCurrentIndex(panel.sweep_picker.combo.findData("adam"))
    panel.axis_widgets["x"][0].setCurrentText("lr")
    panel.axis_widgets["y"][0].setCurrentText("beta1")
    fields = panel.sweep_picker.form.widgets
    assert not fields["lr"].isEnabled() and not fields["beta1"].isEnabled() and fields["beta2"].isEnabled()
    fields["lr"].setText("abc")  # swept: the axis sets it
    cfg = panel.sweep_config()
    assert "lr" not in cfg.base_params and cfg.x.param == "lr"
    panel.axis_widgets["x"][0].setCurrentText("beta2")
    assert fields["lr"].isEnabled() and not fields["beta2"].isEnabled()


def test_the_sweep_steps_data_set_objectives_on_mini_batches_and_a_replay_keeps_the_batch(window):
    panel = window.explore
    assert not panel.sweep_batch.isEnabled()  # Rosenbrock has no data
    panel.sweep_function.setCurrentIndex(panel.sweep_function.findData("linear_regression"))
    assert panel.sweep_batch.isEnabled()
    panel.sweep_batch.setValue(8)
    cfg = panel.sweep_config()
    assert cfg.batch_size == 8
    assert cfg.cell_landscape_config(0, 0).batch_size == 8


def test_before_any_computation_the_basin_maps_show_the_chosen_functions_contours_and_minima(window):
    panel = window.explore
    plot, image, contours, minima = panel.basin_views[0]
    assert image.image is None and len(minima.getData()[0]) == 4  # Himmelblau's four minima
    assert contours.getData()[0] is not None and len(contours.getData()[0]) > 100
    (x0, x1), _ = plot.getPlotItem().vb.viewRange()
    assert (x0, x1) != (0.0, 1.0) and x0 < -3 < 3 < x1
    panel.basin_function.setCurrentIndex(panel.basin_function.findData("linear_regression"))
    assert plot.getPlotItem().getAxis("bottom").labelText == "w"
