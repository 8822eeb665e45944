"""Every optimiser in the registry, table-driven: it descends, and exact single steps match the maths."""
import math

import pytest
import torch

from engine.config import OptimizerConfig
from engine.landscape import LandscapeConfig, run_landscape
from engine.optimizers import OPTIMIZERS
from engine.registry import ConfigError

ALL = OPTIMIZERS.names()


def last_frame(cfg: LandscapeConfig):
    frame = None
    for frame in run_landscape(cfg, with_state=False):
        pass
    return frame


@pytest.mark.parametrize("name", ALL)
def test_every_optimiser_lowers_the_loss_on_the_quadratic(name):
    # Adadelta's first steps are sqrt(eps)-sized by design; its lr scales them up.
    params = {"sgd": {"noise": 0.0}, "adadelta": {"lr": 50.0}}.get(name, {})
    cfg = LandscapeConfig(function="quadratic", start=(2.0, 1.5), steps=60,
                          optimizers=(OptimizerConfig(name, params),))
    frames = list(run_landscape(cfg, with_state=False))
    first, last = frames[0].loss[0, 0], frames[-1].loss[0, 0]
    assert math.isfinite(last)
    assert last < 0.5 * first, f"{name}: {first} -> {last}"


@pytest.mark.parametrize("name", [n for n in ALL if OPTIMIZERS.get(n).elementwise])
def test_every_elementwise_optimiser_descends_on_rosenbrock(name):
    lr = {"gd": 1e-3, "sgd": 1e-3, "momentum": 5e-4, "adagrad": 0.3, "adadelta": 5.0, "rprop": 1e-3,
          # RAdam's first steps are un-rectified (lr * m_hat, no scaling): gradients of ~200 need a small lr.
          "radam": 1e-3}.get(name, 0.01)
    params = {"lr": lr, **({"noise": 0.0} if name == "sgd" else {})}
    cfg = LandscapeConfig(function="rosenbrock", start=(-1.2, 1.0), steps=300,
                          optimizers=(OptimizerConfig(name, params),))
    frames = list(run_landscape(cfg, with_state=False))
    assert frames[-1].loss[0, 0] < frames[0].loss[0, 0]
    assert (frames[-1].diverged_at < 0).all()


def test_lbfgs_reaches_the_rosenbrock_minimum():
    cfg = LandscapeConfig(function="rosenbrock", start=(-1.2, 1.0), steps=60,
                          optimizers=(OptimizerConfig("lbfgs", {"max_iter": 5}),))
    f = last_frame(cfg)
    assert f.xy[0, 0] == pytest.approx([1.0, 1.0], abs=1e-4)
    assert f.evals[0] > 60  # the line search costs extra gradient evaluations, and they are counted


def one_step(name, params, fn, start):
    p = torch.tensor([start], dtype=torch.float64, requires_grad=True)
    opt = OPTIMIZERS.get(name).build([p], params)
    fn(p).sum().backward()
    opt.step()
    return p.detach()[0].tolist()


def test_exact_rmsprop_step():
    # v = 0.01 * 2^2 = 0.04; step = 0.01 * 2 / sqrt(0.04) = 0.1
    x = one_step("rmsprop", {"lr": 0.01, "alpha": 0.99}, lambda p: (p ** 2).sum(-1), (1.0, 1.0))
    assert x == pytest.approx([0.9, 0.9], abs=1e-7)


def test_exact_adam_l2_and_adamw_steps():
    fn = lambda p: (p[..., 0] - 1.0) ** 2  # noqa: E731 - gradient 0 at x = 1: only the decay acts
    l2 = one_step("adam_l2", {"lr": 0.1, "weight_decay": 1e-4}, fn, (1.0, 0.0))
    w = one_step("adamw", {"lr": 0.1, "weight_decay": 1e-4}, fn, (1.0, 0.0))
    # Coupled: g = 1e-4 is normalised by Adam to a full lr-sized step: 1 - 0.1 * 1e-4 / (1e-4 + 1e-8).
    assert l2[0] == pytest.approx(0.900010, abs=1e-6)
    # Decoupled: x <- x (1 - lr wd), and the zero gradient moves nothing.
    assert w[0] == pytest.approx(0.99999, abs=1e-12)


def test_registry_refuses_unknown_and_out_of_range_settings():
    with pytest.raises(ConfigError) as err:
        OPTIMIZERS.get("adam").resolve({"lr": -1})
    assert err.value.field == "optimizer adam.lr" and "greater than 0" in str(err.value)
    with pytest.raises(ConfigError) as err:
        OPTIMIZERS.get("adam").resolve({"momentum": 0.9})
    assert "unknown setting" in str(err.value)
    with pytest.raises(ConfigError, match="needs momentum"):
        OPTIMIZERS.get("momentum").resolve({"momentum": 0.0, "nesterov": True})
    with pytest.raises(ConfigError, match="unknown optimizer"):
        OPTIMIZERS.get("adamm")


def test_registry_refuses_a_duplicate_name():
    with pytest.raises(ValueError, match="already registered"):
        OPTIMIZERS.register("adam", OPTIMIZERS.get("adam"))


def test_plain_adam_has_no_weight_decay_so_adam_l2_stays_distinct():
    assert OPTIMIZERS.get("adam").build([torch.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 0
    assert OPTIMIZERS.get("adam_l2").build([torch.zeros(1, requires_grad=True)]).defaults["weight_decay"] == 0.01
    assert isinstance(OPTIMIZERS.get("adamw").build([torch.zeros(1, requires_grad=True)]), torch.optim.AdamW)
