"""The 2D view's internal-state features: glyphs, step-by-step mode, state panel, results, schedules,
custom functions and the config round trip. Values drawn are checked against optimizer.state as the
frames carry it (and against engine.glyphs), never against a copy of the maths."""
import numpy as np
import pytest

from engine.config import OptimizerConfig, ScheduleConfig
from engine.diagnostics import STATUSES
from engine.glyphs import decompose_frames, effective_lr, glyphs_for_frame, step_of, update_rule_lines
from engine.landscape import LandscapeConfig
from engine.optimizers import OPTIMIZERS
from gui.glyph_items import ARROW_POINTS, ELLIPSE_POINTS, arrow_polyline, auto_scale
from gui.mathtext import latex_to_html, plain


def _race(panel, *entries, steps=None):
    panel.optimizers.clear()
    for name, params in entries:
        panel.optimizers.add(name, params)
    if steps is not None:
        panel.steps_spin.setValue(steps)
    panel.reset()


def _arrows(item):
    x, y = item.getData()
    pts = np.stack([x, y], axis=1).reshape(-1, ARROW_POINTS, 2)
    return pts[:, 0], pts[:, 1]  # origins, tips


def _select(panel, name):
    row = next(i for i, e in enumerate(panel.optimizers.editors) if e.name == name)
    panel.optimizers.list.setCurrentRow(row)
    return row


def test_glyphs_show_the_optimizer_state_of_the_frame(panel, qtbot):
    _race(panel, ("momentum", {"lr": 0.001}), ("adam", {"lr": 0.05}), ("rmsprop", {"lr": 0.01}))
    for cb in panel.glyph_checks.values():
        cb.setChecked(True)
    for _ in range(6):
        panel.single_step()
    last, prev = panel.history.last, panel.history.prev
    assert last.step == 5 and prev.step == 4
    g = panel.glyphs
    s_grad, s_disp = g.scales["grad"], g.scales["disp"]
    assert s_grad and s_disp
    heads = last.xy[:, 0]  # one trajectory per optimiser: rows of the glyph items, in race order

    origins, tips = _arrows(g.item("neg_grad"))
    np.testing.assert_allclose(origins, heads)
    np.testing.assert_allclose(tips, heads - s_grad * last.grad[:, 0], rtol=1e-9)

    origins, tips = _arrows(g.item("step"))
    np.testing.assert_allclose(tips, heads + s_disp * (last.xy[:, 0] - prev.xy[:, 0]), rtol=1e-9)

    # momentum: -lr * momentum_buffer, straight from optimizer.state; NaN (not drawn) for the others
    origins, tips = _arrows(g.item("momentum"))
    buf = last.state[0]["momentum_buffer"][0]
    np.testing.assert_allclose(tips[0], heads[0] - s_disp * 0.001 * buf, rtol=1e-9)
    assert np.isnan(tips[1:]).all()

    # Adam's bias-corrected first moment, from exp_avg and torch's step count
    origins, tips = _arrows(g.item("first_moment"))
    st = last.state[1]
    t = float(st["step"])
    m_hat = st["exp_avg"][0] / (1 - 0.9 ** t)
    np.testing.assert_allclose(tips[1], heads[1] - s_grad * m_hat, rtol=1e-6)
    assert np.isnan(tips[[0, 2]]).all()

    # effective-lr ellipses: semi-axes = effective lr per axis * |direction|, drawn around each head
    x, y = g.item("effective_lr").getData()
    rings = np.stack([x, y], axis=1).reshape(-1, ELLIPSE_POINTS, 2)[:, :-1]
    for j, (name, direction) in enumerate((("momentum", last.grad[0, 0]), ("adam", m_hat),
                                           ("rmsprop", last.grad[2, 0]))):
        cfg = panel.run_configs[j][1]
        gl = glyphs_for_frame(last, j, cfg.name, cfg.params)
        eff = gl.effective_lr[0]
        radii = s_disp * eff * np.linalg.norm(direction)
        np.testing.assert_allclose(rings[j, :, 0].max() - heads[j, 0], radii[0], rtol=1e-6)
        np.testing.assert_allclose(rings[j].mean(axis=0), heads[j], atol=radii.max() * 0.06)
    # Adam's eff lr is lr / (sqrt(v_hat) + eps) from exp_avg_sq; its step lands on its ellipse.
    v_hat = st["exp_avg_sq"][0] / (1 - 0.999 ** t)
    eff_adam = 0.05 / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(effective_lr("adam", panel.run_configs[1][1].params, st, 0.05)[0], eff_adam,
                               rtol=1e-5)
    step = last.xy[1, 0] - prev.xy[1, 0]
    radii = eff_adam * np.linalg.norm(m_hat)
    assert np.sum((step / radii) ** 2) == pytest.approx(1.0, rel=1e-4)


def test_glyph_toggles_and_a_fixed_scale(panel, qtbot):
    _race(panel, ("gd", {"lr": 0.001}))
    panel.single_step()
    panel.single_step()
    assert not panel.glyphs.item("step").isVisible()
    panel.glyph_checks["step"].setChecked(True)
    panel.glyph_scale.setCurrentIndex(panel.glyph_scale.findData(1.0))
    assert panel.glyphs.item("step").isVisible()
    origins, tips = _arrows(panel.glyphs.item("step"))
    h = panel.history
    np.testing.assert_allclose(tips[0], 2 * h.last.xy[0, 0] - h.prev.xy[0, 0])  # true length at x1
    assert "steps ×1" in panel.glyphs.scale_item.toPlainText() and panel.glyphs.scale_item.isVisible()
    panel.glyph_checks["step"].setChecked(False)
    assert not panel.glyphs.item("step").isVisible()


@pytest.mark.parametrize("name, params", [("adam", {"lr": 0.05}), ("adamw", {"lr": 0.05, "weight_decay": 0.1}),
                                          ("momentum", {"lr": 0.001, "nesterov": True})])
def test_step_by_step_draws_parts_that_add_up_to_the_step(panel, qtbot, name, params):
    _race(panel, ("gd", {"lr": 0.001}), (name, params))
    _select(panel, name)
    panel.explain_check.setChecked(True)
    panel.single_step()  # the first press takes the first update too, so there is one to split
    panel.single_step()
    h = panel.history
    assert (h.prev.step, h.last.step) == (1, 2)
    g = panel.glyphs
    parts = panel.last_parts[1]
    assert g.part_count() == len(parts) >= 2
    assert g.revealed == 1  # parts appear one after another ...
    qtbot.waitUntil(lambda: g.revealed == len(parts), timeout=5000)  # ... in order
    s = g.scales["disp"]
    here = h.prev.xy[1, 0].copy()
    for part in parts:  # head to tail, in torch's order
        origins, tips = _arrows(g.part_item(part.key))
        row = 0 if part.key not in [p.key for p in parts[:parts.index(part)]] else 1
        np.testing.assert_allclose(origins[row], here, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(tips[row], here + s * part.vector[0], rtol=1e-9, atol=1e-12)
        here = tips[row]
    step = h.last.xy[1, 0] - h.prev.xy[1, 0]
    np.testing.assert_allclose(here, h.prev.xy[1, 0] + s * step, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(step_of(parts)[0], step, rtol=1e-5, atol=1e-9)
    cfg = panel.run_configs[1][1]
    again = decompose_frames(h.prev, h.last, 1, cfg.name, cfg.params)
    assert [p.key for p in again] == [p.key for p in parts]
    # the sum arrow and the State tab's table say the same
    o, t = _arrows(g.sum_item)
    np.testing.assert_allclose(t[0], h.prev.xy[1, 0] + s * step, rtol=1e-6, atol=1e-9)
    rows = dict(panel.state_panel.part_rows)
    assert rows["sum of the parts"] == rows["step torch took"]
    assert panel.state_panel.parts_match and "miss" not in panel.state_panel.parts.text()
    assert panel.state_panel.parts.isVisible()
    panel.explain_check.setChecked(False)
    assert g.part_count() == 0


def test_state_panel_lists_step_count_and_bias_corrections_for_adam(panel, qtbot):
    _race(panel, ("gd", {"lr": 0.001}), ("adam", {"lr": 0.05, "beta1": 0.8}))
    _select(panel, "adam")
    for _ in range(4):
        panel.single_step()
    panel.side_tabs.setCurrentWidget(panel.state_panel)
    rows = dict(panel.state_panel.rows)
    assert rows["step t"] == "3"
    assert rows["1 - beta1^t"] == f"{1 - 0.8 ** 3:.4g}"
    assert rows["1 - beta2^t"] == f"{1 - 0.999 ** 3:.4g}"
    assert "first moment m" in rows and "second moment v" in rows and "effective lr per axis" in rows
    text = panel.state_panel.table.text()
    assert "step t" in text and "β<sub>1</sub>" in text
    rule = plain(panel.state_panel.rule.text())
    assert "0.8" in rule and "←" not in rule and "\\" not in rule
    assert panel.state_panel.rule_lines and "m_t" in panel.state_panel.rule_lines[0]
    assert "Δx" in rule  # the update just taken, with its result
    # selecting another optimiser switches the panel
    _select(panel, "gd")
    assert dict(panel.state_panel.rows)["optimiser"] == "GD"


def test_results_table_fills_with_a_status_per_optimiser(panel, qtbot):
    _race(panel, ("gd", {"lr": 0.1}), ("adam", {"lr": 0.05}), steps=60)
    panel.play()
    qtbot.waitUntil(lambda: not panel.playing and panel.history is not None
                    and len(panel.history.steps) == 61, timeout=20_000)
    panel.side_tabs.setCurrentWidget(panel.results)
    table = panel.results
    assert table.table.rowCount() == 2
    statuses = [row["status"] for row in table.rows]
    assert all(s in STATUSES for s in statuses)
    assert statuses[0] == "diverged"
    assert table.status_of(0).startswith("diverged at ")
    assert table.rows[1]["grad_evals"] == 61 and table.rows[1]["final_loss"] > 0
    assert table.table.item(1, 0).text() == "Adam"
    assert "GD (diverged at step" in [t.text for _, t in panel.legend.items][0]


def test_plateau_counters_appear_in_the_state_panel(panel, qtbot):
    _race(panel, ("adam", {"lr": 0.05}))
    editor = panel.optimizers.editors[0]
    editor.schedule.set_config(ScheduleConfig("plateau", {"patience": 3, "threshold": 0.5}))
    for _ in range(5):
        panel.single_step()
    rows = dict(panel.state_panel.schedule_rows)
    state = panel.history.last.schedule_state[0]
    assert rows["schedule"].startswith("Reduce on plateau")
    assert rows["steps without improvement"].startswith(f"{state['num_bad_epochs']} of patience 3")
    assert "cooldown left" in rows and "next loss must beat" in rows
    assert "must beat" in plain(panel.state_panel.schedule.text()) or "next loss" in panel.state_panel.schedule.text()


def test_invalid_schedule_is_refused_naming_the_field(panel, qtbot):
    _race(panel, ("adam", {"lr": 0.05}))
    messages = []
    panel.message.connect(messages.append)
    editor = panel.optimizers.editors[0]
    editor.schedule.set_config(ScheduleConfig("cyclic", {"base_lr": 0.01, "max_lr": 0.001}))
    assert "schedule.max_lr" in editor.schedule.message.text()
    assert any("max_lr" in m for m in messages)
    messages.clear()
    panel.play()
    assert panel.worker is None
    assert any("schedule.max_lr" in m and "at least base_lr" in m for m in messages)


def test_cyclic_schedules_mark_the_lr_field_ignored(panel, qtbot):
    editor = panel.optimizers.editors[0]
    lr = editor.form.widgets["lr"]
    assert lr.isEnabled()
    editor.schedule.combo.setCurrentIndex(editor.schedule.combo.findData("onecycle"))
    assert not lr.isEnabled() and not editor.lr_note.isHidden()
    assert "ignored" in editor.lr_note.text()
    editor.schedule.params_form.widgets["cycle_momentum"].setChecked(True)
    assert "cycled" in editor.schedule.caption.text()
    editor.schedule.combo.setCurrentIndex(editor.schedule.combo.findData("constant"))
    assert lr.isEnabled() and editor.lr_note.isHidden()


def _choose_new_custom(panel):
    panel.function_combo.setCurrentIndex(panel.function_combo.count() - 1)


def test_custom_function_parse_error_names_the_part_and_the_app_stays_usable(panel, qtbot):
    messages = []
    panel.message.connect(messages.append)
    drawn = panel.function.name
    panel.function_combo.setCurrentIndex(panel.function_combo.count() - 1)  # New custom f(x, y)
    panel.custom_edit.setText("x**2 + foo(y)")
    panel.custom_edit.returnPressed.emit()
    assert messages and "foo" in messages[-1] and "column 8" in messages[-1]
    assert "\u201cfoo(y)\u201d" in messages[-1]
    assert panel.function.name in (drawn, "custom")
    panel.single_step()  # still usable: runs what is drawn
    assert len(panel.history.steps) == 1
    panel.custom_edit.setText("x**2 + 3*y**2")
    panel.custom_edit.returnPressed.emit()
    assert panel.function.name == "custom"
    assert panel.function_combo.currentText() == "Custom: x**2 + 3*y**2"
    assert panel.config().custom_expression == "x**2 + 3*y**2"
    # listed beside the built-ins: choosing a built-in and back restores it
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("beale"))
    assert panel.function.name == "beale"
    panel.function_combo.setCurrentIndex(panel.function_combo.findText("Custom: x**2 + 3*y**2"))
    assert panel.function.name == "custom" and panel.function.formula == "x**2 + 3*y**2"


def test_domain_controls_redraw_the_map(panel, qtbot):
    _choose_new_custom(panel)
    assert panel.domain_row.isVisibleTo(panel)
    for w, v in zip(panel.domain_edits, ("-1", "1", "-2", "0.5")):
        w.setText(v)
    panel.domain_edits[-1].editingFinished.emit()
    assert panel.function.domain == ((-1.0, 1.0), (-2.0, 0.5))
    rect = panel.image.mapRectToParent(panel.image.boundingRect())
    assert rect.left() == pytest.approx(-1, abs=0.02) and rect.right() == pytest.approx(1, abs=0.02)
    assert rect.top() == pytest.approx(-2, abs=0.02) and rect.bottom() == pytest.approx(0.5, abs=0.02)
    assert panel.config().custom_domain == ((-1.0, 1.0), (-2.0, 0.5))
    messages = []
    panel.message.connect(messages.append)
    panel.domain_edits[1].setText("-5")
    panel.domain_edits[1].editingFinished.emit()
    assert messages and "custom domain.x" in messages[-1]
    assert panel.function.domain == ((-1.0, 1.0), (-2.0, 0.5))


def test_non_finite_parts_are_masked_and_trajectories_entering_them_diverge(panel, qtbot):
    _race(panel, ("gd", {"lr": 1.0}))
    _choose_new_custom(panel)
    for w, v in zip(panel.domain_edits, ("-1", "2", "-1", "1")):
        w.setText(v)
    panel.custom_edit.setText("sqrt(x) + y**2")
    panel.custom_edit.returnPressed.emit()
    image = panel.image.image
    assert np.isnan(image).any() and np.isfinite(image).any()
    cx, _ = panel.contours.getData()
    assert np.nanmin(cx) > -0.05  # no contour drawn around the hole
    panel.start_point = (0.5, 0.5)
    panel._show_start()
    panel.reset()
    for _ in range(3):
        panel.single_step()
    last = panel.history.last
    assert last.diverged_at[0, 0] == 1  # sqrt of the negative x it jumped to
    assert "diverged at step 1" in panel.status_label.text()


def test_config_round_trips_through_the_controls(panel, qtbot):
    _race(panel, ("adamw", {"lr": 0.02, "weight_decay": 0.1}), ("momentum", {"lr": 0.003, "nesterov": True}))
    panel.optimizers.editors[0].schedule.set_config(ScheduleConfig("cosine", {"T_max": 50, "eta_min": 0.001},
                                                                   warmup_steps=5))
    panel.steps_spin.setValue(123)
    panel.seed_spin.setValue(9)
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("quadratic"))
    cfg = panel.config()
    assert cfg.function == "quadratic"
    other = LandscapeConfig(function="beale", steps=77, optimizers=(OptimizerConfig("sgd"),))
    panel.set_config(other)
    assert panel.config().function == "beale" and panel.config().steps == 77
    panel.set_config(cfg)
    assert panel.config() == cfg
    assert panel.config().to_dict() == cfg.to_dict()
    # a custom function with its own domain too
    custom = LandscapeConfig(function="custom", custom_expression="x**2 + sin(3*y)",
                             custom_domain=((-2.0, 2.0), (-1.0, 4.0)), start=(1.0, 1.0), steps=50,
                             optimizers=(OptimizerConfig("adam", {"lr": 0.1}, label="fast Adam"),))
    panel.set_config(custom)
    got = panel.config()
    assert got.function == "custom" and got.custom_domain == ((-2.0, 2.0), (-1.0, 4.0))
    assert got.optimizers[0].label == "fast Adam" and got.start == (1.0, 1.0)
    panel.set_config(got)
    assert panel.config() == got
    panel.single_step()
    assert panel.history.last.xy[0, 0].tolist() == [1.0, 1.0]
    # clouds of starts and mini-batches, through the controls and back
    from engine.landscape import StartsConfig
    cloud = LandscapeConfig(function="linear_regression", starts=StartsConfig("disc", 40, 0.25), steps=20, seed=3,
                            batch_size=16, optimizers=(OptimizerConfig("sgd", {"lr": 0.05}), OptimizerConfig("gd")))
    panel.set_config(cloud)
    got = panel.config()
    assert (got.function, got.starts, got.batch_size, got.seed) == ("linear_regression", cloud.starts, 16, 3)
    panel.set_config(got)
    assert panel.config() == got
    assert panel.starts_kind.currentData() == "disc" and panel.starts_count.value() == 40
    assert panel.batch_spin.value() == 16 and panel.batch_spin.isEnabled()
    panel.starts_kind.setCurrentIndex(panel.starts_kind.findData("grid"))
    panel.starts_count.setValue(9)
    panel.batch_spin.setValue(0)
    got = panel.config()
    assert got.starts == StartsConfig("grid", 9, 0.25) and got.batch_size == 0
    panel.set_config(got)
    assert panel.config() == got
    panel.starts_kind.setCurrentIndex(panel.starts_kind.findData("point"))
    assert panel.config().starts.count == 1
    panel.set_config(cfg)  # not a data set: no batch size
    assert panel.config() == cfg and not panel.batch_spin.isEnabled()


def test_adam_l2_beside_adamw_effective_decay(panel, qtbot):
    _race(panel, ("gd", {"lr": 0.001}))
    panel.decay_plot.compare_button.click()
    names = [e.name for e in panel.optimizers.editors]
    assert names == ["gd", "adam_l2", "adamw"]
    assert panel.side_tabs.currentWidget() is panel.decay_plot
    for _ in range(8):
        panel.single_step()
    d = panel.decay_plot
    assert d.which == [1, 2]  # GD has no weight decay
    l2, w = d.values[1].view, d.values[2].view
    assert len(l2) == 8 and np.isnan(l2[0]).all()  # nothing accumulated before the first update
    np.testing.assert_allclose(w[1:], 0.05 * 0.1)  # decoupled: lr * wd on both axes
    last = panel.history.last
    st = last.state[1]
    v_hat = st["exp_avg_sq"][0] / (1 - 0.999 ** float(st["step"]))
    np.testing.assert_allclose(l2[-1], 0.1 * 0.05 / (np.sqrt(v_hat) + 1e-8), rtol=1e-5)  # coupled
    assert abs(l2[-1, 0] - l2[-1, 1]) > 1e-6
    x, y = d.curves[1][0].getData()
    assert np.isfinite(y).sum() == 7


def test_auto_scale_keeps_a_readable_scale_without_flicker():
    assert auto_scale(None, 1.0) == 100.0
    assert auto_scale(None, 0.45) == 200.0  # 1, 2 or 5 times a power of ten, nearest the target
    assert auto_scale(100.0, 1.5) == 100.0  # 150 px: still readable, kept
    assert auto_scale(100.0, 5.0) == 20.0
    assert auto_scale(None, 0.0) is None
    assert auto_scale(None, 1e-30) == 1e12
    x, y = arrow_polyline(np.array([[0.0, 0.0], [np.nan, 0]]), np.array([[1.0, 0.0], [1, 1]]), (0.01, 0.01))
    assert len(x) == 2 * ARROW_POINTS and np.isnan(x[ARROW_POINTS:]).all()
    assert (x[1], y[1]) == (1.0, 0.0)
    assert x[3] < 1.0 and y[3] * y[5] < 0  # barbs behind the tip, one each side


@pytest.mark.parametrize("name", list(OPTIMIZERS.names()) if hasattr(OPTIMIZERS, "names") else
                         [n for n, _ in OPTIMIZERS.items()])
def test_every_update_rule_renders_as_rich_text(name):
    values = {"lr": 0.01, "t": 3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "wd": 0.01, "mu": 0.9, "g": [1.5, -2e-5],
              "x": [0.1, 0.2], "m": [0.1, -0.2], "delta": [1e-3, -2e-3]}
    for values_given in ({}, values):
        for line in update_rule_lines(name, values_given):
            text = plain(latex_to_html(line))
            assert "\\" not in text and "{" not in text and "}" not in text, (line, text)
    assert "β" in plain(latex_to_html(r"\hat v_t = \frac{v_t}{1 - \beta_2^{t}}"))


def test_every_optimizer_draws_glyphs_parts_and_state_without_error(panel, qtbot):
    names = [n for n, _ in OPTIMIZERS.items()]
    for cb in panel.glyph_checks.values():
        cb.setChecked(True)
    panel.explain_check.setChecked(True)
    for group in (names[:7], names[7:]):
        _race(panel, *[(n, {}) for n in group])
        for row, name in enumerate(group):
            panel.optimizers.list.setCurrentRow(row)
            panel.single_step()
            rows = dict(panel.state_panel.rows)
            assert rows["optimiser"] == OPTIMIZERS.get(name).label
            assert panel.state_panel.rule_lines
        assert panel.last_parts and all(len(p) >= 1 for p in panel.last_parts.values())
        x, y = panel.glyphs.item("neg_grad").getData()
        assert np.isfinite(x).any()


def test_clouds_of_starts_draw_glyphs_for_every_head_and_summarise_results(panel, qtbot):
    from engine.landscape import StartsConfig
    cfg = LandscapeConfig(function="himmelblau", starts=StartsConfig("disc", 5, 0.5), steps=30,
                          optimizers=(OptimizerConfig("adam", {"lr": 0.05}), OptimizerConfig("momentum", {"lr": 0.01})))
    panel.set_config(cfg)
    assert panel.config().starts == cfg.starts
    panel.glyph_checks["neg_grad"].setChecked(True)
    for _ in range(3):
        panel.single_step()
    origins, tips = _arrows(panel.glyphs.item("neg_grad"))
    assert len(origins) == 10
    np.testing.assert_allclose(origins, panel.history.last.xy.reshape(-1, 2))
    panel.update_side_panels(force=True)
    assert panel.results.summary and panel.results.table.rowCount() == 2
    assert panel.results.rows[0]["trajectories"] == 5
    assert not panel.state_panel.trajectory.isHidden()
    panel.state_panel.trajectory.setValue(3)
    g = panel.history.last.grad[0, 3]
    assert dict(panel.state_panel.rows)["gradient g"] == "(" + ", ".join(f"{v:.4g}" for v in g) + ")"


def test_an_optimiser_added_after_the_run_length_changed_previews_its_schedule_over_that_run(panel):
    assert {e.schedule.total_steps for e in panel.optimizers.editors} == {panel.steps_spin.value()}
    panel.steps_spin.setValue(3000)
    editor = panel.optimizers.add("sgd")
    assert editor.schedule.total_steps == 3000
    assert all(e.schedule.total_steps == 3000 for e in panel.optimizers.editors)
