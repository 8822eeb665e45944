"""MNIST training on real digits: accuracy on the bundled split and the real test set, determinism, lessons."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.config import OptimizerConfig, ScheduleConfig
from engine.datasets import to_tensors
from engine.idx import load_idx_pair
from engine.registry import ConfigError
from engine.training import (EvalPoint, PreparedData, RunSummary, TrainConfig, TrainStep, build_model,
                             evaluate, prepare_data, run_training, smoothing_floor)

T10K = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist-t10k"


@pytest.fixture(scope="module")
def bundled_run():
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-3}), epochs=3, seed=0)
    data = prepare_data(cfg)
    model = build_model(cfg)
    records = list(run_training(cfg, data, model))
    return cfg, data, model, records


def test_mlp_reaches_85_percent_validation_accuracy_in_3_epochs(bundled_run):
    cfg, data, model, records = bundled_run
    evals = [r for r in records if isinstance(r, EvalPoint)]
    assert len(evals) == 3
    assert max(e.val_acc for e in evals) >= 0.85
    assert len(data.x_val) == 1000 and len(data.x_train) == 4000


def test_same_model_scores_85_percent_on_the_real_mnist_test_set(bundled_run):
    if not T10K.exists():
        pytest.skip(f"{T10K} is absent (it is only shipped beside the project for tests)")
    cfg, _, model, _ = bundled_run
    x, y = load_idx_pair(T10K / "t10k-images-idx3-ubyte.gz", T10K / "t10k-labels-idx1-ubyte.gz")
    xt, yt = to_tensors(x, y)
    assert len(xt) == 10_000
    _, acc, _ = evaluate(model, xt, yt, torch.nn.CrossEntropyLoss())
    assert acc >= 0.85


def test_records_and_step_count(bundled_run):
    cfg, data, _, records = bundled_run
    steps = [r for r in records if isinstance(r, TrainStep)]
    assert len(steps) == 3 * math.ceil(4000 / 64)
    assert isinstance(records[-1], RunSummary) and records[-1].steps == len(steps)
    assert all(np.isfinite(s.loss) and s.grad_norm > 0 for s in steps)
    assert steps[0].layer_names == ("1", "4") and steps[0].update_ratios.shape == (2,)


def test_runs_sharing_a_seed_get_identical_first_losses_whatever_the_optimiser():
    data = prepare_data(TrainConfig(seed=5))

    def first(name):
        cfg = TrainConfig(optimizer=OptimizerConfig(name), epochs=1, seed=5)
        return next(iter(run_training(cfg, data))).loss

    assert first("adam") == first("sgd") == first("rmsprop")


def small_data(n_train=400, n_val=200):
    full = prepare_data(TrainConfig(seed=0))
    return PreparedData(full.x_train[:n_train], full.y_train[:n_train], full.x_val[:n_val], full.y_val[:n_val],
                        None, None, "subset")


def test_early_stopping_stops_at_best_plus_patience_and_restores_the_best_weights():
    data = small_data()
    # A large rate overfits 400 digits fast, so validation loss turns up early.
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 3e-3}), epochs=60, batch_size=50, early_stopping=3,
                      model_params={"hidden": 256, "dropout": 0.0}, seed=1)
    model = build_model(cfg)
    records = list(run_training(cfg, data, model))
    evals = [r for r in records if isinstance(r, EvalPoint)]
    summary = records[-1]
    assert summary.stopped_early and summary.restored_best
    best = min(range(len(evals)), key=lambda i: evals[i].val_loss)
    assert len(evals) == best + 1 + 3
    assert [e.patience_count for e in evals[best:]] == [0, 1, 2, 3]
    val_loss, _, _ = evaluate(model, data.x_val, data.y_val, torch.nn.CrossEntropyLoss())
    assert val_loss == pytest.approx(evals[best].val_loss, abs=1e-6)
    assert summary.final_val_loss == pytest.approx(evals[best].val_loss, abs=1e-6)


def test_label_smoothing_floor_matches_closed_form_and_bounds_the_loss():
    assert smoothing_floor(0.1) == pytest.approx(0.5003, abs=5e-5)
    assert smoothing_floor(0.0) == 0.0
    # The floor is the entropy of the smoothed target: cross-entropy against it can never go lower.
    target = torch.full((10,), 0.01)
    target[3] = 0.91
    logits = torch.log(target)  # the best possible prediction
    loss = torch.nn.functional.cross_entropy(logits[None], torch.tensor([3]), label_smoothing=0.1)
    assert float(loss) == pytest.approx(smoothing_floor(0.1), abs=1e-6)


def test_plateau_schedule_is_driven_by_validation_loss():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 3e-3}, ScheduleConfig(
        "plateau", {"patience": 0, "factor": 0.5})), epochs=30, batch_size=100, eval_every=4, seed=2,
        model_params={"dropout": 0.0})
    evals = [r for r in run_training(cfg, data) if isinstance(r, EvalPoint)]
    lrs = [e.lr for e in evals]
    assert lrs[0] == 3e-3 and min(lrs) < 3e-3
    for prev, cur in zip(evals, evals[1:]):  # the rate falls only after an evaluation that did not improve
        if cur.lr < prev.lr:
            assert cur.patience_count >= 1


def test_bad_settings_are_refused_with_the_field_named():
    for kwargs, field in (({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
                          ({"label_smoothing": 1.0}, "label_smoothing"), ({"val_fraction": 0.95}, "val_fraction"),
                          ({"model_params": {"dropout": 1.5}}, "model mlp.dropout")):
        with pytest.raises(ConfigError) as err:
            TrainConfig(**kwargs).validate()
        assert err.value.field == field


def test_config_round_trips_through_json():
    cfg = TrainConfig(optimizer=OptimizerConfig("adamw", {"lr": 1e-3, "weight_decay": 0.05}), label_smoothing=0.1)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_gd_uses_the_whole_training_split_each_step():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("gd", {"lr": 0.5}), epochs=3, seed=0)
    steps = [r for r in run_training(cfg, data) if isinstance(r, TrainStep)]
    assert len(steps) == 3  # one full-batch step per epoch
