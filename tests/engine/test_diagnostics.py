"""Convergence statuses at the steps closed forms predict, on runs built to show each one."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.config import OptimizerConfig
from engine.diagnostics import (
    STATUSES, ConvergenceTracker, distance_to_nearest_minimum, results_table, summary_table,
)
from engine.functions import FUNCTIONS
from engine.landscape import EXPLODE_WIDTHS, LandscapeConfig, StartsConfig, run_landscape

W = 20  # the default window
GRAD_TOL, LOSS_TOL, NEAR_TOL = 1e-6, 1e-9, 1e-3  # the defaults


def track(function, opts, steps, start=None, starts=StartsConfig(), function_params=None, **tolerances):
    """Run and track; returns the tracker, the last frame and each frame's status names."""
    cfg = LandscapeConfig(function=function, function_params=function_params or {}, start=start, starts=starts,
                          steps=steps, optimizers=tuple(OptimizerConfig(n, p) for n, p in opts))
    tracker = ConvergenceTracker.for_run(cfg, **tolerances)
    history = []
    for frame in run_landscape(cfg, with_state=False):
        tracker.update(frame)
        history.append(tracker.status().names())
    return tracker, frame, history


def first_run_of(flags, length):
    """First index that starts ``length`` consecutive True values, or None."""
    run = 0
    for k, flag in enumerate(flags):
        run = run + 1 if flag else 0
        if run == length:
            return k - length + 1
    return None


def test_gd_on_the_quadratic_converges_where_the_closed_form_says():
    # kappa 10, lr 0.1: the steep axis is solved in one step (1 - 0.1 * 10 = 0), the other shrinks by 0.9.
    tracker, _, history = track("quadratic", [("gd", {"lr": 0.1})], 300, start=(-2.5, 1.0))
    k = np.arange(301)
    u = -2.5 * 0.9**k
    v = np.where(k == 0, 1.0, 0.0)
    loss = 0.5 * (u**2 + 10 * v**2)
    grad = np.hypot(u, 10 * v)
    dloss = np.abs(np.diff(loss, prepend=np.nan))
    near = np.hypot(u, v) <= NEAR_TOL
    expected = first_run_of(near & ((grad < GRAD_TOL) | (dloss < LOSS_TOL)), W)
    assert 90 < expected < 110
    assert tracker.status().get(0, 0) == ("converged", expected)
    assert tracker.status().decided[0, 0] == expected + W - 1
    assert history[expected + W - 2][0, 0] == "running"  # not claimed before the window is full
    assert tracker.steps_to_tolerance[0, 0] == np.argmax(near | (grad < GRAD_TOL))


def test_with_unknown_minima_only_a_vanishing_gradient_counts_as_converged():
    cfg = LandscapeConfig(function="quadratic", start=(-2.5, 1.0), steps=300,
                          optimizers=(OptimizerConfig("gd", {"lr": 0.1}),))
    tracker = ConvergenceTracker(1, 1, minima=None)
    for frame in run_landscape(cfg, with_state=False):
        tracker.update(frame)
    k = np.arange(301)
    grad = np.hypot(2.5 * 0.9**k, np.where(k == 0, 10.0, 0.0))
    expected = int(np.argmax(grad < GRAD_TOL))
    assert 135 < expected < 145
    assert tracker.status().get(0, 0) == ("converged", expected)


def test_gd_with_too_large_an_lr_diverges_at_the_step_it_explodes():
    # lr 0.25 on the steep axis: v_k = (1 - 2.5)^k; the engine calls a coordinate past this bound exploded.
    (xmin, xmax), (ymin, ymax) = FUNCTIONS.get("quadratic").domain
    bound = EXPLODE_WIDTHS * max(xmax - xmin, ymax - ymin) + max(abs(xmin), abs(xmax), abs(ymin), abs(ymax))
    expected = math.ceil(math.log(bound) / math.log(1.5))
    assert 1.5 ** (expected - 1) <= bound < 1.5**expected
    tracker, last, history = track("quadratic", [("gd", {"lr": 0.25}), ("gd", {"lr": 0.1})], 60, start=(-2.5, 1.0))
    assert tracker.status().get(0, 0) == ("diverged", expected)
    assert last.diverged_at[0, 0] == expected
    assert all(h[0, 0] != "diverged" for h in history[:expected])
    assert tracker.status().get(1, 0)[0] != "diverged"  # the other optimiser goes on


def test_gd_at_the_stability_edge_oscillates_and_never_counts_as_a_stall():
    # lr 2 / kappa: the steep axis flips between +1 and -1 forever while the loss settles at 5: level
    # loss far from the minimum would read as a stall, but a bounce is not a plateau.
    tracker, _, history = track("quadratic", [("gd", {"lr": 0.2})], 200, start=(-2.5, 1.0))
    assert tracker.status().get(0, 0) == ("oscillating", 2)  # the first flip: step 2 reverses step 1
    first = next(k for k, h in enumerate(history) if h[0, 0] == "oscillating")
    assert first == 2 + math.ceil(0.75 * W) - 1  # as soon as enough flips are in the window
    assert all(h[0, 0] == "oscillating" for h in history[first:])


def test_momentum_with_a_high_lr_oscillates_across_the_ravine_and_a_low_lr_does_not():
    # Heavy ball, mu 0.9, curvature 50 across the ravine: lr 0.07 puts the steep mode's eigenvalues at
    # an angle of ~148 degrees per step (a sign change on most steps); lr 0.001 at ~13 degrees.
    tracker, _, history = track("ravine", [("momentum", {"lr": 0.07}), ("momentum", {"lr": 0.001})], 400)
    assert history[60][0, 0] == "oscillating"
    start = next(k for k, h in enumerate(history) if h[0, 0] == "oscillating")
    assert start < 30
    assert all(h[1, 0] != "oscillating" for h in history)
    # The bounce decays (|eigenvalue| = sqrt(0.9)), so it ends up converged, after the oscillation.
    name, step = tracker.status().get(0, 0)
    assert name == "converged" and step > 60


def test_on_the_saddle_ridge_gd_stalls_at_the_saddle_point_and_off_it_escapes():
    # y = 0 exactly: GD never sees the unstable direction and creeps into the saddle point, x_k = -1.8 * 0.8^k.
    # The saddle has no minima, so arriving there is a stall, not convergence.
    tracker, last, _ = track("saddle", [("gd", {"lr": 0.1})], 200, start=(-1.8, 0.0))
    k = np.arange(201)
    x = -1.8 * 0.8**k
    dloss = np.abs(np.diff(x**2, prepend=np.nan))
    expected = first_run_of((dloss < LOSS_TOL) | (2 * np.abs(x) < GRAD_TOL), W)
    assert tracker.status().get(0, 0) == ("stalled", expected)
    assert np.abs(last.xy[0, 0]).max() < 1e-9
    assert results_table(tracker, last, ["GD"])[0]["distance_to_minimum"] is None
    # One hundredth off the ridge, the unstable direction grows by 1.2 per step: no stall, it runs downhill.
    tracker, _, history = track("saddle", [("gd", {"lr": 0.1})], 200, start=(-1.8, 0.01))
    assert all(h[0, 0] != "stalled" for h in history)
    assert tracker.status().get(0, 0)[0] == "diverged"


def test_a_step_too_small_to_make_progress_is_a_stall_far_from_the_minimum():
    tracker, last, _ = track("quadratic", [("gd", {"lr": 1e-12})], 60, start=(-2.5, 1.0))
    assert tracker.status().get(0, 0) == ("stalled", 1)  # loss changes are measured from step 1
    row = results_table(tracker, last, ["GD"])[0]
    assert row["distance_to_minimum"] == pytest.approx(math.hypot(2.5, 1.0))
    assert row["steps_to_tolerance"] is None
    # Unknown minima: a tiny loss change with a gradient that is not small still reads as a stall.
    cfg = LandscapeConfig(function="quadratic", start=(-2.5, 1.0), steps=60,
                          optimizers=(OptimizerConfig("gd", {"lr": 1e-12}),))
    tracker = ConvergenceTracker(1, 1, minima=None)
    for frame in run_landscape(cfg, with_state=False):
        tracker.update(frame)
    assert tracker.status().get(0, 0) == ("stalled", 1)


def test_sgd_noise_near_the_minimum_is_not_mistaken_for_a_status():
    # Noisy steps flip sign often, but not coherently: 20 noisy trajectories stay "running" throughout.
    tracker, _, history = track("quadratic", [("sgd", {})], 600, starts=StartsConfig("disc", 20, 1.0))
    assert all((h == "running").all() for h in history)


def test_distance_to_nearest_minimum():
    minima = FUNCTIONS.get("himmelblau").minima
    d = distance_to_nearest_minimum(np.array(minima), minima)
    np.testing.assert_array_equal(d, np.zeros(4))
    d = distance_to_nearest_minimum(np.array([[[0.0, 0.0], [3.0, 3.0]]]), minima)
    assert d.shape == (1, 2)
    assert d[0, 0] == pytest.approx(min(math.hypot(*m) for m in minima))
    assert d[0, 1] == pytest.approx(1.0)  # (3, 2) is one away
    assert np.isnan(distance_to_nearest_minimum(np.zeros((3, 2)), ())).all()
    assert np.isnan(distance_to_nearest_minimum(np.zeros((3, 2)), None)).all()


def test_results_table_and_summary():
    opts = [("gd", {"lr": 0.1}), ("gd", {"lr": 0.25})]
    tracker, last, _ = track("quadratic", opts, 150, start=(-2.5, 1.0))
    rows = results_table(tracker, last, ["GD 0.1", "GD 0.25"])
    assert [r["status"] for r in rows] == ["converged", "diverged"]
    ok, bad = rows
    assert ok["final_loss"] < 1e-8 and ok["steps_to_tolerance"] is not None
    assert ok["distance_to_minimum"] < NEAR_TOL
    assert math.isfinite(bad["final_loss"]) and bad["final_loss"] > 1e6  # its last finite loss
    assert bad["steps_to_tolerance"] is None and bad["status_step"] == last.diverged_at[1, 0]
    assert ok["grad_evals"] == bad["grad_evals"] == 151
    assert ok["wall_time"] == bad["wall_time"] == last.elapsed
    assert [r["wall_time"] for r in results_table(tracker, last, ["a", "b"], elapsed=[1.0, 2.0])] == [1.0, 2.0]
    with pytest.raises(ValueError):
        results_table(tracker, last, ["only one"])

    tracker, last, _ = track("quadratic", [("gd", {"lr": 0.1})], 300, starts=StartsConfig("disc", 8, 0.5))
    (summary,) = summary_table(tracker, last, ["GD"])
    assert summary["trajectories"] == 8 and summary["converged"] == 8
    assert summary["median_steps_to_tolerance"] is not None and summary["best_final_loss"] < 1e-8
    assert set(STATUSES) <= set(summary)


def test_frames_must_arrive_in_order():
    cfg = LandscapeConfig(function="quadratic", steps=3, optimizers=(OptimizerConfig("gd"),))
    frames = list(run_landscape(cfg, with_state=False))
    tracker = ConvergenceTracker.for_run(cfg)
    tracker.update(frames[0])
    with pytest.raises(ValueError, match="in order"):
        tracker.update(frames[2])
    with pytest.raises(ValueError, match="shape"):
        ConvergenceTracker(2, 1).update(frames[0])
    with pytest.raises(ValueError, match="window"):
        ConvergenceTracker(1, 1, window=0)


def test_custom_functions_have_unknown_minima():
    cfg = LandscapeConfig(function="custom", custom_expression="(x - 1)**2 + y**2", start=(0.0, 1.0), steps=2,
                          optimizers=(OptimizerConfig("gd"),))
    assert ConvergenceTracker.for_run(cfg).minima is None
    assert ConvergenceTracker.for_run(LandscapeConfig(function="saddle")).minima == ()


def test_the_cloud_summary_agrees_with_the_per_trajectory_rows():
    opts = [("gd", {"lr": 0.1}), ("momentum", {"lr": 0.02}), ("gd", {"lr": 0.3})]
    tracker, last, _ = track("rosenbrock", opts, 200, starts=StartsConfig("random", 40))
    rows = results_table(tracker, last, ["a", "b", "c"])
    for summary in summary_table(tracker, last, ["a", "b", "c"]):
        mine = [r for r in rows if r["index"] == summary["index"]]
        assert summary["trajectories"] == len(mine) == 40
        for status in STATUSES:
            assert summary[status] == sum(r["status"] == status for r in mine), status
        losses = [r["final_loss"] for r in mine if math.isfinite(r["final_loss"])]
        steps = [r["steps_to_tolerance"] for r in mine if r["steps_to_tolerance"] is not None]
        assert summary["best_final_loss"] == (min(losses) if losses else None)
        assert summary["median_final_loss"] == (float(np.median(losses)) if losses else None)
        assert summary["median_steps_to_tolerance"] == (float(np.median(steps)) if steps else None)
        assert summary["grad_evals"] == mine[0]["grad_evals"] and summary["wall_time"] == mine[0]["wall_time"]
    assert sum(s["diverged"] for s in summary_table(tracker, last, ["a", "b", "c"])) > 0, "a mixed cloud"
