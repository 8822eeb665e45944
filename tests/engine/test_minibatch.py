"""Data-set objectives: losses as means over seeded data, mini-batches, minima, and the race's use of them."""
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from engine import minibatch
from engine.config import OptimizerConfig
from engine.functions import FUNCTIONS, get_function
from engine.landscape import LandscapeConfig, StartsConfig, run_landscape
from engine.minibatch import DATA_OBJECTIVES, data_objective_of, get_data_objective, minibatches
from engine.registry import ConfigError


NAMES = DATA_OBJECTIVES.names()
# Every setting moved off its default (n_points kept small so the per-sample Jacobians stay cheap).
OTHER = {"n_points": 96, "noise": 0.2, "feature_scale": 2.0, "feature_offset": -1.5, "data_seed": 7}


def f64(*xy):
    return torch.tensor(xy, dtype=torch.float64)


def points(obj):
    (x0, x1), (y0, y1) = obj.domain
    return [obj.start, (x0 + 0.3 * (x1 - x0), y0 + 0.8 * (y1 - y0)), (x1 - 0.1, y0 + 0.1)]


def test_both_objectives_are_registered_as_functions_too():
    assert {"linear_regression", "logistic_regression"} <= set(NAMES)
    for name in NAMES:
        fn = get_function(name)
        assert fn is FUNCTIONS.get(name)
        assert data_objective_of(fn) is get_data_objective(name) is fn.data
        assert fn.min_value is None  # it moves with the data; DataProblem.minimum_value has it
    assert data_objective_of(get_function("rosenbrock")) is None


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("params", [{}, OTHER])
def test_full_batch_gradient_is_the_mean_of_per_sample_gradients(name, params):
    problem = get_data_objective(name).problem(params)
    for point in points(get_data_objective(name)):
        P = f64(*point).requires_grad_(True)
        problem.full_loss(P).backward()
        per_sample = torch.autograd.functional.jacobian(problem.per_sample_loss, f64(*point))  # (n, 2)
        assert per_sample.shape == (problem.n_points, 2)
        torch.testing.assert_close(P.grad, per_sample.mean(0), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("params", [{}, OTHER])
def test_linear_regression_loss_and_gradient_closed_form(params):
    problem = get_data_objective("linear_regression").problem(params)
    x, ones = problem.features[:, 0], problem.features[:, 1]
    y = problem.targets
    assert torch.equal(ones, torch.ones_like(x))
    for w, b in points(get_data_objective("linear_regression")):
        r = w * x + b - y
        P = f64(w, b).requires_grad_(True)
        loss = problem.full_loss(P)
        loss.backward()
        assert loss.item() == pytest.approx(float((r * r).mean()), rel=1e-13)
        torch.testing.assert_close(P.grad, f64(float(2 * (r * x).mean()), float(2 * r.mean())), rtol=1e-12,
                                   atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_batch_loss_is_the_mean_over_the_batch(name):
    problem = get_data_objective(name).problem()
    P = torch.tensor(points(get_data_objective(name)), dtype=torch.float64)
    idx = torch.tensor([5, 0, 17, 17, 200])
    expected = problem.per_sample_loss(P)[:, idx].mean(-1)
    torch.testing.assert_close(problem.batch_loss(P, idx), expected, rtol=1e-15, atol=0)
    # All the data in order is the full loss, exactly.
    assert torch.equal(problem.batch_loss(P, torch.arange(problem.n_points)), problem.full_loss(P))
    with pytest.raises(ValueError, match="1D tensor of sample indices"):
        problem.batch_loss(P, torch.zeros(2, 2, dtype=torch.long))


def test_map_grid_is_evaluated_in_chunks_with_the_same_values(monkeypatch):
    fn = get_function("logistic_regression")
    xs, ys, whole = fn.grid(9, 7)
    monkeypatch.setattr(minibatch, "CHUNK_ELEMENTS", 3 * 256)  # three points per chunk
    _, _, chunked = fn.grid(9, 7)
    assert np.array_equal(whole, chunked) and whole.shape == (7, 9)
    assert whole[3, 4] == fn(f64(xs[4], ys[3])).item()


def test_float32_points_get_float32_losses():
    fn = get_function("linear_regression")
    assert fn(torch.tensor(fn.start)).dtype == torch.float32


# ---- data ----

@pytest.mark.parametrize("name", NAMES)
def test_data_are_seeded_and_cached(name):
    obj = get_data_objective(name)
    a = obj.problem({"data_seed": 3})
    assert a is obj.problem({"data_seed": 3})
    minibatch._problem.cache_clear()
    b = obj.problem({"data_seed": 3})
    assert a is not b and torch.equal(a.features, b.features) and torch.equal(a.targets, b.targets)
    c = obj.problem({"data_seed": 4})
    assert not torch.equal(a.features, c.features)
    assert a.features.shape == (256, 2) and a.targets.shape == (256,) and a.features.dtype == torch.float64


def test_noise_slider_keeps_the_features_and_moves_only_the_noise():
    obj = get_data_objective("linear_regression")
    clean, noisy = obj.problem({"noise": 0.0}), obj.problem({"noise": 1.0})
    assert torch.equal(clean.features, noisy.features)
    x = clean.features[:, 0]
    torch.testing.assert_close(clean.targets, 2.0 * x - 1.0, rtol=0, atol=1e-15)
    assert float((noisy.targets - clean.targets).std()) == pytest.approx(1.0, abs=0.15)


def test_logistic_labels_are_zero_one_and_flipped_by_label_noise():
    obj = get_data_objective("logistic_regression")
    clean, flipped = obj.problem({"noise": 0.0}), obj.problem({"noise": 0.3})
    assert set(clean.targets.tolist()) == {0.0, 1.0}
    assert torch.equal(clean.features, flipped.features)
    share = float((clean.targets != flipped.targets).double().mean())
    assert 0.2 < share < 0.4


def test_feature_offset_makes_the_ravine():
    # The MSE's Hessian is 2 A^T A / n: with centred x it is nearly diagonal, with an offset it is
    # strongly coupled (condition number up by an order of magnitude).
    obj = get_data_objective("linear_regression")

    def condition(offset):
        a = obj.problem({"feature_offset": offset}).features
        return float(torch.linalg.cond(2 * a.T @ a / a.shape[0]))

    assert condition(0.0) < 2.0
    assert condition(2.0) > 20.0
    assert condition(4.0) > 4 * condition(2.0)


# ---- minima ----

def test_linear_regression_minimum_is_least_squares():
    obj = get_data_objective("linear_regression")
    for params in ({}, OTHER):
        problem = obj.problem(params)
        a, y = problem.features.numpy(), problem.targets.numpy()
        expected = np.linalg.lstsq(a, y, rcond=None)[0]
        np.testing.assert_allclose(problem.minimum, expected, rtol=1e-12)
        P = f64(*problem.minimum).requires_grad_(True)
        problem.full_loss(P).backward()
        assert P.grad.abs().max() < 1e-12
        assert problem.minimum_value == pytest.approx(problem.full_loss(f64(*problem.minimum)).item(), rel=1e-15)
        assert get_function("linear_regression").minima_for(params) == (problem.minimum,)
    assert obj.problem({"noise": 0.0}).minimum == pytest.approx((2.0, -1.0), abs=1e-12)


@pytest.mark.parametrize("params", [{}, OTHER, {"noise": 0.0}])
def test_logistic_regression_minimum_is_stationary_and_lowest(params):
    problem = get_data_objective("logistic_regression").problem(params)
    assert problem.minimum is not None
    P = f64(*problem.minimum).requires_grad_(True)
    value = problem.full_loss(P)
    value.backward()
    assert P.grad.abs().max() < 1e-10
    angles = torch.linspace(0, 2 * np.pi, 17)[:-1]
    ring = P.detach() + 1e-3 * torch.stack([angles.cos(), angles.sin()], -1).double()
    assert (problem.full_loss(ring) > value.detach()).all()


def test_separable_logistic_data_has_no_minimum():
    a = torch.tensor([[1.0, 2.0], [2.0, 1.0], [-1.0, -2.0], [-2.0, -1.5]], dtype=torch.float64)
    t = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    assert minibatch._logistic_minimum(a, t) is None


# ---- mini-batches ----

def test_fixed_seed_gives_the_same_batches_and_another_seed_others():
    def take(seed, k=20):
        stream = minibatches(100, 16, seed)
        return [next(stream).tolist() for _ in range(k)]

    assert take(0) == take(0)
    assert take(0) != take(1)


def test_each_epoch_is_a_permutation_with_a_short_last_batch():
    stream = minibatches(50, 16, seed=3)
    epochs = []
    for _ in range(3):
        batches = [next(stream) for _ in range(4)]
        assert [len(b) for b in batches] == [16, 16, 16, 2]
        flat = torch.cat(batches)
        assert flat.dtype == torch.int64 and sorted(flat.tolist()) == list(range(50))
        epochs.append(flat.tolist())
    assert epochs[0] != epochs[1] != epochs[2]


def test_batches_are_exactly_a_seeded_dataloaders():
    stream = minibatches(40, 8, seed=11)
    loader = DataLoader(TensorDataset(torch.arange(40)), batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(11))
    expected = [b[0] for _ in range(3) for b in loader]
    assert all(torch.equal(next(stream), e) for e in expected)


def test_batch_larger_than_the_data_is_the_whole_data_set():
    batch = next(minibatches(30, 64, seed=0))
    assert sorted(batch.tolist()) == list(range(30))


@pytest.mark.parametrize("args, field", [((0, 4, 0), "n_points"), ((10, 0, 0), "batch_size"),
                                         ((10, 4, -1), "seed"), ((10, 2.5, 0), "batch_size")])
def test_bad_sampler_settings_are_refused(args, field):
    with pytest.raises(ConfigError, match=field):
        next(minibatches(*args))


# ---- in the race ----

def race(function="linear_regression", batch_size=0, seed=0, optimizers=None, steps=40, **kw):
    optimizers = optimizers or (OptimizerConfig("gd", {"lr": 0.05}), OptimizerConfig("sgd", {"lr": 0.05}))
    cfg = LandscapeConfig(function=function, steps=steps, seed=seed, batch_size=batch_size,
                          optimizers=tuple(optimizers), **kw)
    return list(run_landscape(cfg, with_state=False))


def test_gd_steps_on_the_full_data_whatever_the_batch_size():
    full, batched = race(batch_size=0), race(batch_size=8)
    for a, b in zip(full, batched):
        assert np.array_equal(a.xy[0], b.xy[0]) and np.array_equal(a.grad[0], b.grad[0])


def test_a_lone_full_batch_optimiser_beside_mini_batches_steps_every_start_of_its_cloud():
    """GD alone in a mini-batch race with a cloud: every start steps on the full loss, as it does beside SGD."""
    starts = StartsConfig("disc", 5, 0.3)
    gd = OptimizerConfig("gd", {"lr": 0.05})
    alone = race(batch_size=8, optimizers=(gd,), starts=starts)
    beside = race(batch_size=8, optimizers=(gd, OptimizerConfig("sgd", {"lr": 0.05})), starts=starts)
    assert not np.array_equal(alone[-1].xy[0, 1:], alone[0].xy[0, 1:]), "the other starts must move too"
    for a, b in zip(alone, beside):
        assert np.array_equal(a.xy[0], b.xy[0]) and np.array_equal(a.grad[0], b.grad[0])


def test_lbfgs_stays_full_batch_as_its_closure_re_evaluates_the_full_loss():
    lbfgs = (OptimizerConfig("lbfgs", {"lr": 0.5}),)
    full, batched = race(batch_size=0, optimizers=lbfgs, steps=5), race(batch_size=8, optimizers=lbfgs, steps=5)
    assert all(np.array_equal(a.xy, b.xy) and np.array_equal(a.grad, b.grad) for a, b in zip(full, batched))


def test_sgd_steps_on_the_seeded_mini_batches_and_frames_show_the_full_loss():
    frames = race(batch_size=8, seed=5, steps=6)
    problem = get_data_objective("linear_regression").problem()
    stream = minibatches(problem.n_points, 8, seed=5)
    for frame in frames:
        idx = next(stream)
        P = torch.from_numpy(frame.xy[1]).requires_grad_(True)
        problem.batch_loss(P, idx).sum().backward()
        assert np.array_equal(frame.grad[1], P.grad.numpy())  # the batch's gradient, no extra noise
        assert np.array_equal(frame.loss[1], problem.full_loss(P.detach()).numpy())  # the full-data loss
    for a, b in zip(frames, frames[1:]):  # and the step is plain SGD on that gradient
        np.testing.assert_allclose(b.xy[1], a.xy[1] - 0.05 * a.grad[1], rtol=1e-15)


def test_sgd_batches_differ_by_seed_and_repeat_with_it():
    a, b, c = (race(batch_size=8, seed=s)[-1].xy[1] for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_batch_as_large_as_the_data_set_is_full_batch_up_to_summation_order():
    frames = race(batch_size=256)
    np.testing.assert_allclose(frames[-1].xy[1], frames[-1].xy[0], rtol=1e-12)


def test_synthetic_sgd_noise_is_off_on_mini_batches():
    quiet = race(batch_size=8, optimizers=(OptimizerConfig("sgd", {"lr": 0.05, "noise": 0.0}),))
    noisy = race(batch_size=8, optimizers=(OptimizerConfig("sgd", {"lr": 0.05, "noise": 2.0}),))
    assert np.array_equal(quiet[-1].xy, noisy[-1].xy)
    unbatched = race(batch_size=0, optimizers=(OptimizerConfig("sgd", {"lr": 0.05, "noise": 2.0}),))
    assert not np.array_equal(unbatched[-1].xy, race(batch_size=0, optimizers=(
        OptimizerConfig("sgd", {"lr": 0.05, "noise": 0.0}),))[-1].xy)


def test_batches_shrink_the_noise_as_they_grow():
    # The spread of SGD's final points over seeds falls as the batch grows: the effect the map shows.
    def spread(batch_size):
        finals = [race(batch_size=batch_size, seed=s, steps=60,
                       optimizers=(OptimizerConfig("sgd", {"lr": 0.05}),))[-1].xy[0, 0] for s in range(8)]
        return float(np.linalg.norm(np.std(finals, axis=0)))

    assert spread(4) > 1.5 * spread(64)


def test_cloud_of_starts_on_a_data_objective():
    frames = race(function="logistic_regression", batch_size=16, starts=StartsConfig("disc", 5, 0.5),
                  optimizers=(OptimizerConfig("momentum", {"lr": 0.5}), OptimizerConfig("adam", {"lr": 0.05})))
    assert frames[-1].xy.shape == (2, 5, 2) and np.isfinite(frames[-1].loss).all()
    assert frames[-1].loss.mean() < frames[0].loss.mean()


def test_batch_size_is_validated_and_round_trips():
    with pytest.raises(ConfigError, match="batch_size: Rosenbrock is not a mean over a data set"):
        LandscapeConfig(function="rosenbrock", batch_size=8).validate()
    with pytest.raises(ConfigError, match="batch_size: must be between 0"):
        LandscapeConfig(function="linear_regression", batch_size=-1).validate()
    cfg = LandscapeConfig(function="linear_regression", batch_size=32, function_params={"noise": 1.0})
    assert LandscapeConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["batch_size"]  # sessions saved before mini-batches existed
    assert LandscapeConfig.from_dict(old).batch_size == 0
    with pytest.raises(ConfigError, match="landscape.batch_size: expected int"):
        LandscapeConfig.from_dict({**cfg.to_dict(), "batch_size": "8"})


def test_the_known_minimum_value_is_the_loss_at_the_known_minimiser():
    from engine.expression import make_custom_function
    from engine.functions import FUNCTIONS
    from engine.minibatch import known_minimum_value
    assert known_minimum_value(FUNCTIONS.get("rosenbrock")) == 0.0
    assert known_minimum_value(make_custom_function("x**2 + y")) is None
    for name, params in (("linear_regression", {"noise": 0.8}), ("logistic_regression", {})):
        fn = FUNCTIONS.get(name)
        problem = data_objective_of(fn).problem(params)
        at = problem.full_loss(torch.tensor(problem.minimum, dtype=torch.float64)).item()
        assert known_minimum_value(fn, params) == pytest.approx(at, rel=1e-9), name


def test_a_batch_larger_than_the_data_set_is_refused_naming_both_sizes():
    cfg = LandscapeConfig(function="linear_regression", function_params={"n_points": 64}, batch_size=65,
                          optimizers=(OptimizerConfig("sgd"),))
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == "batch_size" and "65" in str(err.value) and "64 points" in str(err.value)
    LandscapeConfig(function="linear_regression", function_params={"n_points": 64}, batch_size=64,
                    optimizers=(OptimizerConfig("sgd"),)).validate()
