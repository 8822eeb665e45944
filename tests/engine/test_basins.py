"""Basin maps: a grid of starts run by the real torch optimiser, each labelled by the minimum it reaches."""
import dataclasses

import numpy as np
import pytest
import torch

from engine.basins import (DIVERGED, NOT_CONVERGED, BasinResult, Cancelled, Progress, basin_map, iter_basin_map)
from engine.config import OptimizerConfig, ScheduleConfig
from engine.expression import make_custom_function
from engine.functions import get_function
from engine.landscape import LandscapeConfig, run_landscape
from engine.registry import ConfigError


GD = OptimizerConfig("gd", {"lr": 0.01})
RES = 40


@pytest.fixture(scope="module")
def himmelblau_gd():
    return basin_map("himmelblau", GD, resolution=RES, steps=200)


def test_the_four_himmelblau_minima_each_own_a_basin(himmelblau_gd):
    r = himmelblau_gd
    assert r.labels.shape == (RES, RES) and r.labels.dtype == np.int64
    assert len(r.minima) == 4
    sizes = r.basin_sizes()
    assert (sizes > 0).all(), sizes
    assert sizes.sum() + (r.labels < 0).sum() == RES * RES
    assert (sizes > RES * RES / 10).all()  # four real basins, not a few stray cells


def test_starts_next_to_a_minimum_end_in_it(himmelblau_gd):
    r = himmelblau_gd
    for k, (mx, my) in enumerate(r.minima):
        i, j = np.abs(r.xs - mx).argmin(), np.abs(r.ys - my).argmin()
        assert r.labels[j, i] == k
        assert np.linalg.norm(r.final_xy[j, i] - (mx, my)) <= r.tol
        assert 0 <= r.steps_to_converge[j, i] <= 50  # a start this close arrives quickly


def test_a_start_beside_each_minimum_ends_there_for_other_optimisers_too():
    f = get_function("himmelblau")
    for oc in (OptimizerConfig("momentum", {"lr": 0.002, "momentum": 0.9}), OptimizerConfig("adam", {"lr": 0.05})):
        r = basin_map(f, oc, resolution=24, steps=400, tol=0.05)
        assert (r.basin_sizes() > 0).all(), (oc.name, r.basin_sizes())
        for k, (mx, my) in enumerate(r.minima):
            i, j = np.abs(r.xs - mx).argmin(), np.abs(r.ys - my).argmin()
            assert r.labels[j, i] == k, oc.name


def test_grid_lines_up_with_the_functions_map(himmelblau_gd):
    xs, ys, _ = get_function("himmelblau").grid(RES, RES)
    assert np.array_equal(himmelblau_gd.xs, xs) and np.array_equal(himmelblau_gd.ys, ys)
    assert himmelblau_gd.tol == pytest.approx(0.01)  # 1/1000 of the domain's side by default


def test_each_start_is_the_race_run_from_that_point():
    oc = OptimizerConfig("adam", {"lr": 0.05})
    r = basin_map("himmelblau", oc, resolution=12, steps=80)
    for j, i in ((0, 0), (5, 7), (11, 3)):
        cfg = LandscapeConfig(function="himmelblau", start=(float(r.xs[i]), float(r.ys[j])), steps=80,
                              optimizers=(oc,))
        last = list(run_landscape(cfg, with_state=False))[-1]
        np.testing.assert_allclose(r.final_xy[j, i], last.xy[0, 0], rtol=1e-12)
        assert r.final_loss[j, i] == pytest.approx(last.loss[0, 0], rel=1e-12, abs=1e-300)


def test_labels_steps_and_losses_are_consistent(himmelblau_gd):
    r = himmelblau_gd
    converged = r.labels >= 0
    assert ((r.steps_to_converge >= 0) == converged).all()
    assert (r.steps_to_converge <= r.steps).all()
    dist = np.linalg.norm(r.final_xy - r.minima[np.where(converged, r.labels, 0)], axis=-1)
    assert (dist[converged] <= r.tol).all()
    assert (r.final_loss[converged] < 1e-3).all()


def test_diverged_starts_are_labelled_and_frozen_at_a_finite_point():
    r = basin_map("himmelblau", OptimizerConfig("gd", {"lr": 0.03}), resolution=20, steps=100)
    diverged = r.labels == DIVERGED
    assert diverged.any() and not diverged.all()  # too large a rate for any minimum to hold a run
    assert ((r.diverged_at >= 0) == diverged).all()
    assert np.isnan(r.final_loss[diverged]).all() and np.isfinite(r.final_loss[~diverged]).all()
    assert np.isfinite(r.final_xy).all()
    assert (r.steps_to_converge[diverged] == -1).all()


def test_too_few_steps_leaves_starts_not_converged():
    r = basin_map("himmelblau", GD, resolution=10, steps=3)
    assert (r.labels == NOT_CONVERGED).any()


def test_function_without_minima_has_no_basins():
    r = basin_map("saddle", OptimizerConfig("sgd", {"lr": 0.01, "noise": 0.0}), resolution=8, steps=20)
    assert set(np.unique(r.labels)) <= {NOT_CONVERGED, DIVERGED} and r.minima.shape == (0, 2)


def test_custom_functions_and_schedules_are_accepted():
    f = make_custom_function("(x - 1)**2 + (y + 1)**2", domain=((-3, 3), (-3, 3)))
    bowl = dataclasses.replace(f, minima=((1.0, -1.0),))  # the same function with its minimum listed
    oc = OptimizerConfig("sgd", {"lr": 0.1, "noise": 0.0}, ScheduleConfig("exponential", {"gamma": 0.99}))
    r = basin_map(bowl, oc, resolution=6, steps=200)
    assert (r.labels == 0).all()


def test_sgd_noise_is_seeded():
    oc = OptimizerConfig("sgd", {"lr": 0.01, "noise": 5.0})
    a, b = (basin_map("himmelblau", oc, resolution=6, steps=30, seed=s).final_xy for s in (1, 1))
    c = basin_map("himmelblau", oc, resolution=6, steps=30, seed=2).final_xy
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_generator_yields_progress_then_the_result(monkeypatch):
    monkeypatch.setattr("engine.basins.PROGRESS_S", float("inf"))  # by step count alone: a count to assert
    records = list(iter_basin_map("himmelblau", GD, resolution=4, steps=1000))
    *progress, result = records
    assert all(isinstance(p, Progress) for p in progress) and isinstance(result, BasinResult)
    fractions = [p.fraction for p in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 100 <= len(progress) <= 250


def test_should_stop_cancels():
    seen = []
    with pytest.raises(Cancelled):
        basin_map("himmelblau", GD, resolution=4, steps=1000, progress=seen.append,
                  should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3 and seen[-1] < 0.05


@pytest.mark.parametrize("kwargs, field", [
    ({"optimizer": OptimizerConfig("lbfgs")}, "optimizer"),
    ({"resolution": 1}, "resolution"),
    ({"resolution": 5000}, "resolution"),
    ({"steps": 0}, "steps"),
    ({"tol": 0.0}, "tol"),
    ({"params": {"kappa": 2.0}}, "function himmelblau.kappa"),
    ({"optimizer": OptimizerConfig("adam", {"lr": -1.0})}, "optimizer adam.lr"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs, field):
    kwargs = {"function": "himmelblau", "optimizer": GD, **kwargs}
    with pytest.raises(ConfigError) as info:
        basin_map(**kwargs)
    assert info.value.field == field


def test_lbfgs_refusal_says_why():
    with pytest.raises(ConfigError, match="couples coordinates"):
        basin_map("himmelblau", OptimizerConfig("lbfgs"))


def test_result_arrays_are_numpy_copies(himmelblau_gd):
    for value in (himmelblau_gd.labels, himmelblau_gd.final_xy, himmelblau_gd.final_loss):
        assert isinstance(value, np.ndarray) and not isinstance(value, torch.Tensor) and value.flags.writeable


def test_progress_also_comes_by_time_so_that_a_slow_grid_stays_cancellable(monkeypatch):
    """Steps of a big grid can be slow: a record at least every PROGRESS_S, whatever the step count
    (with the period at 0, a record every step)."""
    monkeypatch.setattr("engine.basins.PROGRESS_S", 0.0)
    *progress, _ = list(iter_basin_map("himmelblau", GD, resolution=4, steps=1000))
    assert [p.done for p in progress] == list(range(1001))
