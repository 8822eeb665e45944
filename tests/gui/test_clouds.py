"""Clouds of starts in the 2D view: the Run group's controls, heads and fading trails, diverged particles,
the batch-size control of data-set objectives, and a history that stays bounded however long a cloud runs."""
import re

import numpy as np

from engine.config import OptimizerConfig
from engine.landscape import LandscapeConfig, LandscapeFrame, StartsConfig


def _frames(k, n, steps, start=0, dead=None):
    rng = np.random.default_rng(start)
    pos = rng.uniform(-1, 1, (k, n, 2))
    out = []
    for t in range(start, start + steps):
        pos = pos + 0.01 * rng.normal(size=pos.shape)
        diverged = np.full((k, n), -1, dtype=np.int64)
        if dead is not None:
            diverged[dead] = 0
        out.append(LandscapeFrame(step=t, xy=pos, loss=rng.random((k, n)) + 0.1, grad=rng.normal(size=(k, n, 2)),
                                  lr=np.full(k, 0.01), diverged_at=diverged, evals=np.full(k, t + 1)))
    return out


def test_a_disc_cloud_of_200_runs_with_heads_and_fading_trails(panel, qtbot):
    from gui.landscape_panel import TRAIL_BANDS
    cfg = LandscapeConfig(function="himmelblau", starts=StartsConfig("disc", 200, 0.5), steps=50,
                          optimizers=(OptimizerConfig("adam", {"lr": 0.05}), OptimizerConfig("momentum", {"lr": 0.01})))
    panel.set_config(cfg)
    assert panel.starts_kind.currentData() == "disc" and panel.starts_count.value() == 200
    assert not panel.starts_radius.isHidden() and not panel.starts_count.isHidden()
    for _ in range(6):
        panel.single_step()
    h = panel.history
    assert h.n == 200 and len(h.steps) == 6
    # the curves are means over the cloud, and say so
    assert panel.loss_plot.getPlotItem().getAxis("left").labelText.startswith("mean loss")
    assert panel.grad_plot.getPlotItem().getAxis("left").labelText == "mean gradient norm"
    for j in range(2):
        x, y = panel.heads[j].getData()
        assert len(x) == 200
        np.testing.assert_allclose(np.c_[x, y], h.last.xy[j])
    # the trails: 5 steps drawn into the trail layer's images, in age bands, older ones fainter
    layers = panel.trail_layer.layers()
    assert panel.cloud and 1 <= len(layers) <= TRAIL_BANDS
    opacities = [o for _, o, _ in layers]
    assert len(opacities) >= 2 and opacities == sorted(opacities) and opacities[0] < opacities[-1]
    image = panel.trail_layer.composite()
    alpha = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())[:, 3::4]
    assert (alpha > 0).sum() > 200  # the segments of 400 particles' 5 steps (some overlap)
    # a point start again: one path per optimiser, no trails
    panel.starts_kind.setCurrentIndex(panel.starts_kind.findData("point"))
    assert panel.starts_count.isHidden() and panel.config().starts.count == 1
    panel.reset()  # a running race keeps its settings; the next one takes the new ones
    panel.single_step()
    assert not panel.cloud and panel.trail_layer.layers() == [] and len(panel.heads[0].getData()[0]) == 1


def test_diverged_particles_are_drawn_with_the_diverged_symbol(panel):
    from gui.landscape_panel import RaceHistory
    from gui.style import DIVERGED_SYMBOL
    panel.run_configs = panel.optimizers.enabled_configs()
    k = len(panel.run_configs)
    panel._make_items(k, 30)
    panel.history = RaceHistory(k, 30)
    dead = (np.zeros((k, 30), bool))
    dead[0, :3] = True
    for f in _frames(k, 30, 3):
        panel.history.add([f])
        panel.redraw()
    assert len(panel.heads[0].getData()[0]) == 30
    panel.history.add(_frames(k, 30, 1, start=3, dead=dead))
    panel.redraw()
    symbols = list(panel.heads[0].data["symbol"])
    assert symbols[:3] == [DIVERGED_SYMBOL] * 3 and DIVERGED_SYMBOL not in symbols[3:]
    np.testing.assert_allclose(panel.heads[1].getData()[0], panel.history.last.xy[1, :, 0])
    # The same particles still diverged: the heads move in place, their symbols kept (a per-point setData
    # costs tens of milliseconds a frame for a big cloud).
    set_data = []
    panel.heads[0].setData = lambda *a, **kw: set_data.append(1)
    panel.history.add(_frames(k, 30, 1, start=4, dead=dead))
    panel.redraw()
    assert set_data == [] and list(panel.heads[0].data["symbol"]) == symbols
    np.testing.assert_allclose(panel.heads[0].data["x"], panel.history.last.xy[0, :, 0])


def test_batch_size_control_is_for_data_set_objectives_only(panel, qtbot):
    assert panel.function.name == "rosenbrock"
    assert panel.batch_spin.isHidden() and not panel.batch_spin.isEnabled()
    assert panel.batch_spin.toolTip() and panel.starts_kind.toolTip() and panel.starts_count.toolTip()
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("linear_regression"))
    assert not panel.batch_spin.isHidden() and panel.batch_spin.isEnabled()
    panel.batch_spin.setValue(32)
    cfg = panel.config()
    assert cfg.function == "linear_regression" and cfg.batch_size == 32
    cfg.validate()
    panel.single_step()
    panel.single_step()
    assert len(panel.history.steps) == 2
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("beale"))
    assert panel.batch_spin.isHidden() and panel.config().batch_size == 0


def test_sgds_synthetic_noise_field_is_off_while_it_steps_on_mini_batches(panel):
    sgd = panel.optimizers.add("sgd")
    noise = sgd.form.widgets["noise"]
    assert noise.isEnabled()
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("linear_regression"))
    assert noise.isEnabled(), "full batch: SGD's noise is the synthetic one"
    panel.batch_spin.setValue(16)
    assert not noise.isEnabled() and "mini-batches" in noise.toolTip()
    later = panel.optimizers.add("sgd")
    assert not later.form.widgets["noise"].isEnabled(), "an SGD added later is told too"
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("beale"))
    assert noise.isEnabled()


def test_a_cloud_history_stays_bounded(panel):
    from gui.landscape_panel import MAX_TRAIL_TRAJECTORIES, TRAIL_STEPS, RaceHistory
    k, n = 3, 400
    panel.run_configs = panel.optimizers.enabled_configs()[:k]
    panel._make_items(k, n)
    panel.history = h = RaceHistory(k, n)
    frames = _frames(k, n, 3000)
    h.add(frames[:1000])
    panel.redraw()
    early = h.nbytes()
    for a in range(1000, 3000, 100):
        h.add(frames[a:a + 100])
        panel.redraw()
    assert len(h.steps) == 3000
    assert h.trail().shape == (TRAIL_STEPS + 1, k, min(n, MAX_TRAIL_TRAJECTORIES), 2)
    np.testing.assert_allclose(h.trail()[-1], frames[-1].xy, rtol=1e-6)
    np.testing.assert_allclose(h.trail()[0], frames[-1 - TRAIL_STEPS].xy, rtol=1e-6)
    # only per-step means (and the first trajectory) grow: far less than the k x n x 2 a whole cloud would
    whole_cloud = 2000 * k * n * 2 * 8
    assert h.nbytes() - early < whole_cloud / 20
    # the export still has the curves and the first trajectory
    assert h.xy.view.shape == (3000, k, 1, 2) and h.loss.view.shape == (3000, k)


def _stepped(panel, cfg, steps):
    """The race of ``cfg`` on the panel, ``steps`` single steps in."""
    panel.set_config(cfg)
    for _ in range(steps):
        panel.single_step()


def test_a_clouds_legend_counts_its_trajectories_instead_of_naming_the_first_to_converge(panel, qtbot):
    """GD at a large rate on Rosenbrock: some starts of a random cloud blow up at once, the rest carry on."""
    cfg = LandscapeConfig(function="rosenbrock", starts=StartsConfig("random", 50), steps=30, seed=2,
                          optimizers=(OptimizerConfig("gd", {"lr": 0.002}),))
    _stepped(panel, cfg, 30)
    dead = int((panel.history.last.diverged_at[0] >= 0).sum())
    assert 0 < dead < 50, "the lesson needs a cloud that partly diverges"
    text = panel._status_of(0)
    assert text is not None and "/50 " in text and re.search(rf"\b{dead}(/50)? diverged", text), text
    legend = [t.text for _, t in panel.legend.items][0]
    assert legend == f"GD ({text})"


def test_a_single_trajectory_still_says_its_status_and_step(panel):
    cfg = LandscapeConfig(function="rosenbrock", start=(-1.2, 1.0), steps=20,
                          optimizers=(OptimizerConfig("gd", {"lr": 0.1}),))
    _stepped(panel, cfg, 20)
    assert panel._status_of(0).startswith("diverged at step ")


def test_a_head_that_leaves_the_map_without_diverging_is_said_to_be_off_the_map(panel):
    # Adam's steps are about lr long whatever the gradient: at lr 100 it leaves Rosenbrock's map at once but
    # stays far inside the bound beyond which a run counts as diverged.
    cfg = LandscapeConfig(function="rosenbrock", start=(-1.2, 1.0), steps=5,
                          optimizers=(OptimizerConfig("adam", {"lr": 100.0}),))
    _stepped(panel, cfg, 3)
    assert (panel.history.last.diverged_at < 0).all()
    assert panel._status_of(0) == "off the map"
    cloud = LandscapeConfig(function="rosenbrock", starts=StartsConfig("disc", 50, 0.1), start=(-1.2, 1.0), steps=5,
                            optimizers=(OptimizerConfig("adam", {"lr": 100.0}),))
    _stepped(panel, cloud, 3)
    assert panel._status_of(0).endswith("50/50 off the map")
