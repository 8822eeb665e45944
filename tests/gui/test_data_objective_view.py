"""A data-set objective in the 2D view: named by its own parameters, its curves measured from the true f*."""
import numpy as np

from engine.minibatch import known_minimum_value


def test_linear_regression_is_drawn_as_f_of_w_and_b_and_its_loss_curve_stays_positive(panel, qtbot):
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("linear_regression"))
    assert panel.map_plot.getPlotItem().getAxis("bottom").labelText == "w"
    assert panel.map_plot.getPlotItem().getAxis("left").labelText == "b"
    assert panel.start_label.text() == "start (w, b)"
    text = panel.formula_label.text()
    assert text.startswith("f(w, b) = ") and "∑" in text and "tfrac" not in text and "\\" not in text
    assert panel._minimum_value == known_minimum_value(panel.function, panel._function_params())
    panel.steps_spin.setValue(300)
    for _ in range(300):
        panel.single_step()
    loss = panel.history.loss.view  # (steps, K): the mean loss per optimiser
    assert np.all(loss - panel._minimum_value > 0), "f - f* is never negative, so the log plot never loses it"


def test_an_analytic_function_keeps_x_and_y(panel):
    panel.function_combo.setCurrentIndex(panel.function_combo.findData("himmelblau"))
    assert panel.map_plot.getPlotItem().getAxis("bottom").labelText == "x"
    assert panel.formula_label.text().startswith("f(x, y) = (")
