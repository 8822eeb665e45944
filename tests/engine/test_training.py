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


# ---- added with the MNIST studio: new settings, divergence, independence of interleaved runs ----

def test_new_settings_have_defaults_and_older_json_still_loads():
    old = {"dataset": "bundled", "optimizer": {"name": "adam", "params": {"lr": 0.001}}, "epochs": 2}
    cfg = TrainConfig.from_dict(old)
    assert cfg.dataset_params == {} and cfg.dropout_per_layer == () and cfg.train_eval_size == 0
    assert cfg.layer_stats_every == 0
    full = TrainConfig(dataset="download", dataset_params={"which": "fashion"}, model_params={"depth": 2},
                       dropout_per_layer=(0.1, 0.5), train_eval_size=300, layer_stats_every=5, label="wide")
    import json
    assert TrainConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full


@pytest.mark.parametrize("kwargs, field", [
    ({"dropout_per_layer": (0.1, 0.2)}, "dropout_per_layer"),  # the default MLP has one dropout layer
    ({"dropout_per_layer": (1.2,)}, "dropout_per_layer[0]"),
    ({"dataset": "download", "dataset_params": {"which": "cifar"}}, "dataset download.which"),
    ({"train_eval_size": -1}, "train_eval_size"), ({"layer_stats_every": -2}, "layer_stats_every"),
])
def test_new_settings_are_validated_with_the_field_named(kwargs, field):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**kwargs).validate()
    assert err.value.field == field


def test_dropout_per_layer_sets_each_dropout_layer():
    cfg = TrainConfig(model_params={"depth": 3}, dropout_per_layer=(0.1, 0.3, 0.6))
    model = build_model(cfg)
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == [0.1, 0.3, 0.6]
    cnn = build_model(TrainConfig(model="cnn", dropout_per_layer=(0.0, 0.5)))
    assert [m.p for m in cnn.modules() if isinstance(m, torch.nn.Dropout)] == [0.0, 0.5]


def test_a_diverging_run_stops_at_the_first_non_finite_step_and_keeps_its_last_finite_weights():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("sgd", {"lr": 0.05}), epochs=5, batch_size=50, seed=0,
                      model_params={"dropout": 0.0})
    # A ReLU network's loss rarely overflows by itself (dead units cap it), so poison one digit, the one
    # the 3rd batch of the first epoch draws: that step's loss and gradient are then not finite.
    first_epoch = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))
    x = data.x_train.clone()
    x[first_epoch[120]] = float("inf")
    data = PreparedData(x, data.y_train, data.x_val, data.y_val, None, None, "poisoned")
    model = build_model(cfg)
    records = list(run_training(cfg, data, model))
    steps = [r for r in records if isinstance(r, TrainStep)]
    summary = records[-1]
    assert summary.diverged and summary.diverged_at == steps[-1].step == summary.steps == 3
    assert not (np.isfinite(steps[-1].loss) and np.isfinite(steps[-1].grad_norm))
    assert all(np.isfinite(s.loss) for s in steps[:-1])
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the bad update was never applied


def test_interleaved_runs_are_independent_of_each_other_dropout_included():
    data = small_data()
    a = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-3}), epochs=2, batch_size=50, seed=1,
                    model_params={"dropout": 0.5})
    b = TrainConfig(optimizer=OptimizerConfig("sgd", {"lr": 0.05}), epochs=2, batch_size=50, seed=2,
                    model_params={"dropout": 0.3})
    alone = {k: [r.loss for r in run_training(c, data) if isinstance(r, TrainStep)] for k, c in (("a", a), ("b", b))}
    together = {"a": [], "b": []}
    ga, gb = run_training(a, data), run_training(b, data)
    for ra, rb in zip(ga, gb):
        torch.rand(3)  # someone else using the global generator in between
        for key, r in (("a", ra), ("b", rb)):
            if isinstance(r, TrainStep):
                together[key].append(r.loss)
    assert together["a"][:len(alone["a"])] == alone["a"][:len(together["a"])]
    assert together["b"][:len(alone["b"])] == alone["b"][:len(together["b"])]
    state = torch.get_rng_state()
    list(run_training(a, data))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is left alone


def test_layer_statistics_are_taken_every_k_steps_and_the_train_sample_is_sized_automatically():
    data = small_data()
    cfg = TrainConfig(epochs=1, batch_size=40, layer_stats_every=3, seed=0)
    steps = [r for r in run_training(cfg, data) if isinstance(r, TrainStep)]
    with_stats = [s.step for s in steps if s.has_layer_stats]
    assert with_stats == [1, 4, 7, 10]
    assert all(len(s.layer_grad_norms) == 0 for s in steps if not s.has_layer_stats)
    from engine.training import layer_stats_interval, train_eval_count
    assert layer_stats_interval(TrainConfig(), 63) == 6 and layer_stats_interval(TrainConfig(), 5) == 1
    assert train_eval_count(TrainConfig(), 4000) == 333
    assert train_eval_count(TrainConfig(), 48000) == 2000 and train_eval_count(TrainConfig(), 100) == 100
    assert train_eval_count(TrainConfig(train_eval_size=50), 4000) == 50


def test_final_losses_are_the_last_evaluation_and_the_test_set_is_scored_at_the_end():
    if not T10K.exists():
        pytest.skip(f"{T10K} is absent")
    x, y = load_idx_pair(T10K / "t10k-images-idx3-ubyte.gz", T10K / "t10k-labels-idx1-ubyte.gz")
    xt, yt = to_tensors(x[:2000], y[:2000])
    base = small_data()
    data = PreparedData(base.x_train, base.y_train, base.x_val, base.y_val, xt, yt, "with test")
    records = list(run_training(TrainConfig(epochs=2, batch_size=50, seed=0), data))
    last = [r for r in records if isinstance(r, EvalPoint)][-1]
    summary = records[-1]
    assert summary.final_val_loss == last.val_loss and summary.final_train_loss == last.train_loss
    assert summary.final_val_acc == last.val_acc
    assert 0.5 < summary.test_acc <= 1.0 and summary.test_loss > 0


# ---- train-mode vs eval-mode loss, best accuracy, optimisers that need a closure ----

def evals_of(records):
    return [r for r in records if isinstance(r, EvalPoint)]


def test_train_mode_loss_is_measured_like_for_like_so_without_dropout_it_equals_the_eval_mode_loss():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-3}), epochs=3, batch_size=50, eval_every=4,
                      seed=0, model_params={"dropout": 0.0})
    evals = evals_of(run_training(cfg, data))
    assert len(evals) == 6
    for e in evals:
        # Same digits, same weights, dropout 0: train mode and eval mode are the same function.
        assert e.train_loss_dropout == e.train_loss
        # The mean of the mini-batch losses since the previous evaluation is kept, and is another number.
        assert math.isfinite(e.batch_loss_mean) and e.batch_loss_mean != e.train_loss


def test_with_dropout_the_train_mode_loss_is_larger_and_training_is_untouched_by_the_evaluations():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-3}), epochs=2, batch_size=50, seed=3,
                      model_params={"dropout": 0.5})
    often = list(run_training(cfg.replace(eval_every=1), data))
    evals = evals_of(often)
    assert len(evals) == 16
    assert all(e.train_loss_dropout > e.train_loss for e in evals)
    # Evaluating at every step (each one drawing dropout masks for the train-mode loss) changes neither the
    # batches nor the training steps' dropout masks: the steps are those of a run evaluated once per epoch.
    rarely = list(run_training(cfg, data))
    assert [(s.loss, s.grad_norm) for s in often if isinstance(s, TrainStep)] == \
        [(s.loss, s.grad_norm) for s in rarely if isinstance(s, TrainStep)]
    by_step = {e.step: e for e in evals}
    for e in evals_of(rarely):
        assert e.train_loss == by_step[e.step].train_loss and e.val_loss == by_step[e.step].val_loss
    # ... and the run repeats exactly, train-mode losses included.
    again = evals_of(run_training(cfg.replace(eval_every=1), data))
    assert [e.train_loss_dropout for e in again] == [e.train_loss_dropout for e in evals]


def test_train_mode_evaluation_leaves_batch_norm_statistics_and_the_mode_alone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.BatchNorm1d(10))
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    on, _, _ = evaluate(model, x, y, torch.nn.CrossEntropyLoss(), train_mode=True)
    off, _, _ = evaluate(model, x, y, torch.nn.CrossEntropyLoss())
    assert on != off  # batch statistics vs running statistics
    assert not model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_best_val_acc_is_the_highest_accuracy_and_the_lowest_loss_has_fields_of_its_own():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-2}), epochs=8, batch_size=50, seed=0,
                      model_params={"dropout": 0.0})
    records = list(run_training(cfg, data))
    evals, summary = evals_of(records), records[-1]
    acc = np.array([e.val_acc for e in evals])
    loss = np.array([e.val_loss for e in evals])
    a, lo = int(np.argmax(acc)), int(np.argmin(loss))
    assert a != lo, "this run's best accuracy and lowest loss come at different evaluations"
    assert summary.best_val_acc == acc.max() and summary.best_epoch == evals[a].epoch
    assert summary.best_acc_step == evals[a].step and summary.best_acc_eval == a
    assert summary.best_val_loss == loss.min() and summary.best_loss_epoch == evals[lo].epoch
    assert summary.best_step == evals[lo].step == evals[-1].best_step and summary.best_eval == lo


def test_a_run_that_diverges_before_any_evaluation_has_no_best_accuracy():
    data = small_data()
    first_epoch = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))
    x = data.x_train.clone()
    x[first_epoch[10]] = float("inf")
    data = PreparedData(x, data.y_train, data.x_val, data.y_val, None, None, "poisoned")
    summary = list(run_training(TrainConfig(epochs=1, batch_size=50, seed=0), data))[-1]
    assert summary.diverged_at == 1
    assert math.isnan(summary.best_val_acc) and math.isnan(summary.best_epoch) and summary.best_acc_eval == -1


def test_lbfgs_is_refused_up_front_for_mnist_with_the_field_named():
    with pytest.raises(ConfigError) as err:
        TrainConfig(optimizer=OptimizerConfig("lbfgs")).validate()
    assert err.value.field == "optimizer lbfgs"
    assert "closure" in err.value.problem and "mini-batches" in err.value.problem
    from engine.optimizers import OPTIMIZERS
    for name, _ in OPTIMIZERS.items():
        if name != "lbfgs":
            TrainConfig(optimizer=OptimizerConfig(name)).validate()  # every other optimiser is accepted


@pytest.mark.parametrize("have, values, text", [
    (1, (0.1, 0.2), "the model has 1 dropout layer: give one value; got 2"),
    (3, (0.1, 0.2), "the model has 3 dropout layers: give one value for all, or 3 values (one per layer); got 2"),
])
def test_a_wrong_number_of_dropout_values_is_explained_in_words(have, values, text):
    with pytest.raises(ConfigError) as err:
        TrainConfig(model_params={"depth": have}, dropout_per_layer=values).validate()
    assert err.value.problem == text


def test_the_global_gradient_norm_is_torchs_total_norm_of_that_steps_gradients():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("sgd", {"lr": 0.05}), epochs=1, batch_size=50, seed=0)
    model = build_model(cfg)
    seen = 0
    for record in run_training(cfg, data, model=model):
        if isinstance(record, TrainStep) and record.step <= 3:
            # The step's gradients are still on the parameters when its record arrives.
            expected = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
            assert record.grad_norm == pytest.approx(expected, rel=1e-6)
            seen += 1
    assert seen == 3


@pytest.mark.parametrize("changes, field", [({"seed": -1}, "seed"), ({"seed": 2 ** 31}, "seed"),
                                            ({"train_size": 3}, "train_size")])
def test_seeds_numpy_cannot_take_and_too_few_digits_are_refused_with_the_field_named(changes, field):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes).validate()
    assert info.value.field == field


def test_a_batch_larger_than_the_training_digits_is_refused_but_gd_takes_them_all():
    data = small_data()
    n = len(data.x_train)
    with pytest.raises(ConfigError) as info:
        next(run_training(TrainConfig(batch_size=n + 1, epochs=1), data))
    assert info.value.field == "batch_size" and f"{n:,} training digits" in info.value.problem
    gd = TrainConfig(optimizer=OptimizerConfig("gd", {"lr": 0.1}), batch_size=n + 1, epochs=1)
    steps = [r for r in run_training(gd, data) if isinstance(r, TrainStep)]
    assert len(steps) == 1  # the whole split in one step
