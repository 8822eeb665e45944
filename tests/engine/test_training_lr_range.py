"""The learning-rate range test: the rate grows exponentially, it stops when the loss blows up, and the
suggested rate is where the smoothed loss falls fastest."""
import math

import numpy as np
import pytest

from engine.config import OptimizerConfig
from engine.lr_range import LRRangeConfig, RangePoint, RangeResult, run_lr_range, smooth, suggest_lr
from engine.registry import ConfigError
from engine.training import PreparedData, TrainConfig, prepare_data, run_training


def synthetic_curve(lrs):
    """Flat at 2.3, falls fastest at lr = 1e-3 (a logistic in log10 lr), then blows up past 0.1."""
    x = np.log10(lrs)
    loss = 2.3 - 2.0 / (1 + np.exp(-4 * (x + 3)))
    loss += np.where(x > -1, 50 * (x + 1) ** 2, 0.0)
    return loss


def test_suggestion_is_the_steepest_fall_of_a_known_curve():
    lrs = np.logspace(-6, 0, 200)
    loss = synthetic_curve(lrs)
    lr, index, reason = suggest_lr(lrs, loss)
    assert 1e-3 / 1.5 < lr < 1e-3 * 1.5
    assert lrs[index] == lr and "steepest" in reason


def test_suggestion_survives_mini_batch_noise():
    rng = np.random.default_rng(0)
    lrs = np.logspace(-6, 0, 300)
    noisy = synthetic_curve(lrs) + rng.normal(0, 0.15, len(lrs))
    lr, _, _ = suggest_lr(lrs, smooth(noisy, 0.05))
    # The moving average lags a little behind the rate: the steepest point comes a bit later.
    assert 1e-3 / 2 < lr < 1e-3 * 4


def test_no_suggestion_when_the_loss_never_falls():
    lrs = np.logspace(-3, 0, 50)
    lr, index, reason = suggest_lr(lrs, np.linspace(1, 5, 50))
    assert math.isnan(lr) and index == -1 and "never fell" in reason
    assert math.isnan(suggest_lr(lrs[:2], np.array([1.0, 0.5]))[0])


def test_smoothing_is_bias_corrected():
    s = smooth(np.full(10, 3.0), 0.05)
    assert np.allclose(s, 3.0)  # no warm-up bias towards 0


def small_data(n_train=512, n_val=256):
    full = prepare_data(TrainConfig(seed=0))
    return PreparedData(full.x_train[:n_train], full.y_train[:n_train], full.x_val[:n_val], full.y_val[:n_val],
                        None, None, "subset")


def test_the_rate_grows_exponentially_and_the_test_stops_when_the_loss_blows_up():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("sgd", {"lr": 0.1}), batch_size=64, seed=3)
    rcfg = LRRangeConfig(start_lr=1e-5, end_lr=100.0, steps=150)
    records = list(run_lr_range(cfg, rcfg, data))
    points = [r for r in records if isinstance(r, RangePoint)]
    result = records[-1]
    assert isinstance(result, RangeResult)
    lrs = np.array([p.lr for p in points])
    assert lrs[0] == pytest.approx(1e-5)
    np.testing.assert_allclose(lrs[1:] / lrs[:-1], rcfg.gamma, rtol=1e-9)
    assert result.stopped_early and len(points) < 150  # plain SGD blows up well before a rate of 100
    assert 1e-5 < result.suggested_lr < lrs[-1]
    assert result.min_over_10 == pytest.approx(result.min_lr / 10)


def test_the_test_starts_from_the_runs_weights_and_batches():
    data = small_data()
    cfg = TrainConfig(optimizer=OptimizerConfig("adam", {"lr": 1e-3}), seed=7)
    first_range = next(iter(run_lr_range(cfg, LRRangeConfig(steps=20), data)))
    first_run = next(iter(run_training(cfg, data)))
    assert first_range.loss == first_run.loss


@pytest.mark.parametrize("kwargs, field", [
    ({"start_lr": 0.0}, "lr range.start_lr"), ({"start_lr": 1e-2, "end_lr": 1e-3}, "lr range.end_lr"),
    ({"steps": 3}, "lr range.steps"), ({"diverge_factor": 1.0}, "lr range.diverge_factor"),
])
def test_bad_settings_are_refused_with_the_field_named(kwargs, field):
    with pytest.raises(ConfigError) as err:
        LRRangeConfig(**kwargs).validate()
    assert err.value.field == field


def test_config_round_trips_through_json():
    cfg = LRRangeConfig(1e-7, 10.0, 300, 0.1, 5.0)
    assert LRRangeConfig.from_dict(cfg.to_dict()) == cfg
